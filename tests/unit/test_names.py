from __future__ import annotations

import pytest

from engine.errors import InvalidModelNameError
from engine.names import MAX_NAME_LENGTH, MAX_VERSION, ModelRef, parse_ref, validate_name

GOOD_NAMES = [
    "a",
    "A",
    "0",
    "_",
    "model",
    "model..1",
    "model.v1",
    "v1.2.",
    "my-model_2",
    "x" * 128,
    "resnet50",
    "a-",
    "a.",
    "a..",
    "a...b",
    "UPPER.lower-9",
]

# Path traversal and other hostile payloads: every one must be refused.
TRAVERSAL_PAYLOADS = [
    "..",
    ".",
    "../",
    "../x",
    "..\\x",
    "x/../y",
    "x/..",
    "/etc/passwd",
    "/",
    "//",
    "x/",
    "x/.",
    "x\\",
    "C:\\Windows",
    "\\\\server\\share",
    "./x",
    ".hidden",
    "...",
    "%2e%2e",
    "%2e%2e%2f",
    "..%2f",
    "%2e%2e/",
    "%2E%2E%2F",
    "..%5c",
    "%2f",
    "%5c",
    "%252e%252e%252f",
    "%25%32%65",
    "%c0%ae%c0%ae",
    "..%c0%af",
    "%u002e%u002e",
    "a\x00",
    "\x00",
    "a\x00/../b",
    "model.onnx\x00.txt",
    "x\n",
    "x\r",
    "x\t",
    " x",
    "x ",
    "a b",
    "\u2024\u2024",
    "\uff0e\uff0e",
    "\u2215etc",
    "\uff0f",
    "mod\u00e9le",
    "-rf",
    "--help",
    "x" * (MAX_NAME_LENGTH + 1),
    "",
    "a;b",
    "a|b",
    "$(id)",
    "`id`",
    "a*",
    "a?",
    "~root",
    "a~",
    "file:///etc",
    "http://x",
]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_accepts_harmless_names(name: str) -> None:
    assert validate_name(name) == name
    assert parse_ref(name) == ModelRef(name)


# Valid references but not valid names: ':' and '@' belong to the reference grammar.
REFERENCE_SYNTAX = ["a:1", "a@b"]


@pytest.mark.parametrize("payload", TRAVERSAL_PAYLOADS + REFERENCE_SYNTAX)
def test_refuses_every_traversal_payload(payload: str) -> None:
    with pytest.raises(InvalidModelNameError, match="invalid model name|must not|not allowed"):
        validate_name(payload)
    with pytest.raises(InvalidModelNameError):
        validate_name(payload, "alias")


@pytest.mark.parametrize("payload", TRAVERSAL_PAYLOADS)
def test_refuses_payloads_inside_references(payload: str) -> None:
    for ref in (payload, f"{payload}:1", f"{payload}@prod", f"ok@{payload}", f"ok:{payload}"):
        with pytest.raises(InvalidModelNameError):
            parse_ref(ref)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("../x", "path separator"),
        ("a\\b", "path separator"),
        ("%2e%2e", "URL-encoded"),
        ("a\x00b", "NUL"),
        (".x", "must not start with '.'"),
        ("-x", "must not start with '-'"),
        ("", "must not be empty"),
        ("x" * 200, "at most 128 characters; was 200"),
        ("a b", "character ' ' is not allowed"),
        ("caf\u00e9", "character '\u00e9' is not allowed"),
    ],
)
def test_error_messages_say_why_and_show_the_value(name: str, fragment: str) -> None:
    with pytest.raises(InvalidModelNameError) as info:
        validate_name(name)
    assert fragment in str(info.value)
    assert repr(name[:80]) in str(info.value)


def test_non_string_names_are_refused() -> None:
    with pytest.raises(InvalidModelNameError, match="must be a string; was 3"):
        validate_name(3)
    with pytest.raises(InvalidModelNameError, match="must be a string"):
        parse_ref(None)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("m", ModelRef("m")),
        ("m:1", ModelRef("m", version=1)),
        ("m:42", ModelRef("m", version=42)),
        (f"m:{MAX_VERSION}", ModelRef("m", version=MAX_VERSION)),
        ("m@production", ModelRef("m", alias="production")),
        ("model..1@v1.2", ModelRef("model..1", alias="v1.2")),
    ],
)
def test_parse_ref(ref: str, expected: ModelRef) -> None:
    parsed = parse_ref(ref)
    assert parsed == expected
    assert str(parsed) == ref


@pytest.mark.parametrize(
    "ref",
    [
        "m:",
        "m:0",
        "m:01",
        "m:-1",
        "m:+1",
        "m:1.0",
        "m: 1",
        "m:1 ",
        "m:abc",
        f"m:{MAX_VERSION + 1}",
        "m:99999999999",
        "m@",
        "m@:1",
        "m:1@a",
        "m@a:1",
        "m@a@b",
        ":1",
        "@a",
        "m::1",
    ],
)
def test_parse_ref_refuses_malformed_versions_and_aliases(ref: str) -> None:
    with pytest.raises(InvalidModelNameError):
        parse_ref(ref)


def test_version_error_names_the_rule() -> None:
    with pytest.raises(
        InvalidModelNameError, match="positive integer without leading zeros; was '01'"
    ):
        parse_ref("m:01")


def test_model_ref_refuses_version_and_alias_together() -> None:
    with pytest.raises(InvalidModelNameError, match="version or an alias, not both"):
        ModelRef("m", version=1, alias="a")
    with pytest.raises(InvalidModelNameError, match="model version must be an int"):
        ModelRef("m", version=0)
    with pytest.raises(InvalidModelNameError, match="model version must be an int"):
        ModelRef("m", version=True)
