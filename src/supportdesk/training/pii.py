"""Personal data in transcripts → typed placeholders, before anything is written to disk.

Where a maintained recogniser exists it decides, not a hand regex: phone numbers are found by
Google's libphonenumber (``phonenumbers``) in any international form and in the national forms
of ``PHONE_REGIONS``; IBANs (mod-97), payment cards (Luhn) and US SSNs (issuance rules) are
validated with ``python-stdnum`` (SSNs by the SSA's structure; nine digits without separators
only where a label says SSN, "ssn: 536221234"); IP addresses with the standard library.
Regexes only propose candidates (and find e-mail addresses, MAC addresses, handles and
identifying links).

Order matters: identifiers introduced by a word ("order #987654321", "account no. 55512")
are replaced first, so a long order number is never mistaken for a phone number.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable

DEFAULT_ORDER_PATTERN = r"(?!x)x"
"""No company order-number format by default: the brand profile's ``order_pattern`` gives one
(numbers introduced as orders, "order #12345678", are found either way)."""
# National formats are read as these countries' numbers; international (+CC) ones in any country.
PHONE_REGIONS = ("US", "GB", "FR", "DE", "AU", "CA", "IN", "ES", "IT", "NL", "IE", "NZ")
# The company's own published numbers are not personal data: the brand profile's contacts
# (``BrandProfile.keep_numbers``) are passed in by whoever scrubs; none by default.
DEFAULT_KEEP_NUMBERS: tuple[str, ...] = ()
# Router gateway addresses every home shares: kept, since support answers quote them.
GATEWAY_ADDRESSES = frozenset({"192.168.0.1", "192.168.1.1", "192.168.1.254", "192.168.0.254", "10.0.0.1", "10.0.0.138"})

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_URL = re.compile(r"\b(?:https?://|www\.)\s?[^\s<>\"']+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<![\w@/])@[A-Za-z0-9_]{1,30}\b")
_REFERENCE = re.compile(
    r"\b(?P<word>order|ticket|case|invoice|tracking|shipment|account|customer|member|policy|contract)"
    r"(?:\s+(?:number|no\.?|num\.?|id|ref(?:erence)?))?\s*(?:#|:|is|=)?\s*"
    r"(?P<id>(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{4,23}\b)",
    re.IGNORECASE,
)
_ACCOUNT_WORDS = {"account", "customer", "member", "policy", "contract"}
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_SSN = re.compile(r"\b\d{3}([- ])\d{2}\1\d{4}\b")
# Nine digits in a row are an SSN only where the text says so ("ssn: 536221234", "social security
# number is ..."): an unlabelled 9-digit number is as likely an order, a serial or a phone.
_SSN_LABELLED = re.compile(
    r"\b(?:ssn|ss\s?#|social(?:\s+security)?(?:\s+(?:number|num\.?|no\.?|#))?)"
    r"\s*(?:is|:|#|=|-)?\s*(?P<id>\d{9})\b",
    re.IGNORECASE,
)
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:.])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f]*:)[0-9A-Fa-f:]{3,39}(?![\w:])")
_MAC = re.compile(r"\b(?:[0-9A-Fa-f]{2}([:-]))(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}\b|\b[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\b")
# A link identifies a person when a query value or a path segment is an id, or when it is a profile.
_PERSONAL_QUERY = re.compile(r"[?&](?:id|user|uid|account|order|email|token|session|profile|u)=", re.IGNORECASE)
_ID_SEGMENT = re.compile(r"/[A-Za-z0-9_-]*\d[A-Za-z0-9_-]{5,}(?:[/?#]|$)")
_PROFILE_PATH = re.compile(r"/(?:user|users|u|profile|profiles|people|member|members|in|pub|author|account|~)[/:]"
                           r"[^/?#\s]+|/~[^/?#\s]+|/@[^/?#\s]+", re.IGNORECASE)
_SOCIAL_HOSTS = re.compile(r"^(?:https?://)?(?:www\.|m\.)?(?:facebook|fb|twitter|x|instagram|linkedin|github|tiktok|"
                           r"youtube|reddit|threads|mastodon\.social)\.com/[^/?#\s]+/?$", re.IGNORECASE)


def personal_url(url: str) -> bool:
    """True for a link that points at one person (a profile, an id in the path or query)."""
    return bool(_PERSONAL_QUERY.search(url) or _ID_SEGMENT.search(url) or _PROFILE_PATH.search(url)
                or _SOCIAL_HOSTS.match(url.rstrip(".,;:!?)")))


def _valid_iban(candidate: str) -> bool:
    from stdnum import iban

    return iban.is_valid(candidate)


def _valid_card(candidate: str) -> bool:
    from stdnum import luhn

    digits = re.sub(r"\D", "", candidate)
    return 13 <= len(digits) <= 19 and luhn.is_valid(digits)


def _valid_ssn(candidate: str) -> bool:
    """The SSA's structure (area not 000/666/9xx, group not 00, serial not 0000). Unlike
    ``stdnum.us.ssn`` it does not exempt numbers once printed in advertisements: in a customer's
    message they are still somebody's."""
    area, group, serial = re.split(r"[- ]", candidate)
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _valid_ip(candidate: str) -> bool:
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return str(address) not in GATEWAY_ADDRESSES and not address.is_unspecified


class Scrubber:
    """Replaces PII with typed placeholders and counts what it replaced."""

    def __init__(self, order_pattern: str = DEFAULT_ORDER_PATTERN, regions: Iterable[str] = PHONE_REGIONS,
                 keep_numbers: Iterable[str] = DEFAULT_KEEP_NUMBERS) -> None:
        self.order = re.compile(order_pattern)
        self.regions = tuple(regions)
        self.keep_numbers = frozenset(keep_numbers)
        self.counts: Counter[str] = Counter()

    def _sub(self, pattern: re.Pattern[str], kind: str, text: str, valid: Callable[[str], bool] | None = None) -> str:
        def replace(match: re.Match[str]) -> str:
            if valid is not None and not valid(match.group(0)):
                return match.group(0)
            self.counts[kind] += 1
            return f"[{kind}]"

        return pattern.sub(replace, text)

    def _references(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            kind = "ACCOUNT" if match.group("word").lower() in _ACCOUNT_WORDS else "ORDER"
            self.counts[kind] += 1
            start, end = match.span("id")
            whole = match.group(0)
            return whole[: start - match.start()] + f"[{kind}]" + whole[end - match.start():]

        return _REFERENCE.sub(replace, text)

    def _labelled_ssns(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:  # labelled: replaced even when not a valid SSN (a typo'd one)
            self.counts["SSN"] += 1
            start, end = match.span("id")
            whole = match.group(0)
            return whole[: start - match.start()] + "[SSN]" + whole[end - match.start():]

        return _SSN_LABELLED.sub(replace, text)

    def _phones(self, text: str) -> str:
        import phonenumbers

        for region in self.regions:
            spans = []
            for found in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
                national = phonenumbers.format_number(found.number, phonenumbers.PhoneNumberFormat.E164)
                digits = re.sub(r"\D", "", found.raw_string)
                if digits in self.keep_numbers or national.lstrip("+") in self.keep_numbers or len(digits) < 7:
                    continue
                spans.append((found.start, found.end))
            for start, end in reversed(spans):
                text = text[:start] + "[PHONE]" + text[end:]
                self.counts["PHONE"] += 1
        return text

    def __call__(self, text: str) -> str:
        text = self._sub(_URL, "URL", text, valid=personal_url)
        text = self._sub(_EMAIL, "EMAIL", text)
        text = self._sub(self.order, "ORDER", text)
        text = self._references(text)
        text = self._sub(_IBAN, "IBAN", text, valid=_valid_iban)
        text = self._sub(_MAC, "MAC", text)
        text = self._sub(_IPV6, "IP", text, valid=_valid_ip)
        text = self._sub(_IPV4, "IP", text, valid=_valid_ip)
        text = self._sub(_CARD, "CARD", text, valid=_valid_card)
        text = self._sub(_SSN, "SSN", text, valid=_valid_ssn)
        text = self._labelled_ssns(text)
        text = self._phones(text)
        return self._sub(_HANDLE, "HANDLE", text)
