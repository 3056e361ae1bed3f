"""How the API is put together: one router per area (its OpenAPI tag), and no route reaching into
the core's or the history's private parts (they go through ServerCore's typed methods)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from types import SimpleNamespace

import supportdesk.server as server_package


def _areas() -> dict[str, object]:
    from supportdesk.server import routes

    return {m.name: importlib.import_module(f"{routes.__name__}.{m.name}") for m in pkgutil.iter_modules(routes.__path__)}


def test_every_route_is_in_its_areas_router_and_served_under_its_tag(settings_factory, small_kb):
    from supportdesk.server.app import create_app
    from supportdesk.server.deps import API

    declared = set()
    for area, module in _areas().items():
        for router, prefix in ((module.router, API), (getattr(module, "public", None), "")):
            for route in getattr(router, "routes", []):
                assert route.tags == [area] and route.endpoint.__module__ == module.__name__, (area, route.path)
                declared |= {(method, prefix + route.path) for method in route.methods}
    app = create_app(SimpleNamespace(settings=settings_factory(small_kb)))
    served = {(method.upper(), path) for path, operations in app.openapi()["paths"].items() for method in operations}
    assert served == declared and ("GET", "/health") in served and ("POST", f"{API}/ask") in served


def test_no_route_touches_a_private_attribute():
    """``core._lock``, ``history._read`` and the like stay behind their owners' methods."""
    folder = Path(server_package.__file__).parent
    layer = [folder / name for name in ("app.py", "deps.py", "middleware.py", "sse.py") if (folder / name).is_file()]
    layer += sorted((folder / "routes").glob("*.py"))
    assert folder / "app.py" in layer
    found = []
    for path in layer:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                found.append(f"{path.relative_to(folder)}:{node.lineno}: .{node.attr}")
    assert found == []
