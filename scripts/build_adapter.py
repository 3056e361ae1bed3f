"""Same as `supportdesk adapter build`: LoRA SFT (Unsloth on a GPU, PEFT on the CPU) → adapters/NAME/."""

from supportdesk.cli import app

if __name__ == "__main__":
    import sys

    app(["adapter", "build", *sys.argv[1:]])
