"""py-greeter: a small Weir filter written in Python (componentize-py).

Requests carrying an `x-block` header are answered at once with 418; the others get an
`x-python-greeting` header and a `python.seen` variable. Every response gets `x-python: 1`.
Config (JSON, optional): {"greeting": "..."}; any other key is refused.
"""
import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import (
    FilterInfo, Header, Phase, Request, RequestAction, RequestAction_Continue,
    RequestAction_Respond, RequestMutations, Response, ResponseAction, ResponseAction_Continue,
    ResponseMutations, ResponseView, Variable,
)

GREETING = "hello from python"


class Filter(exports.Filter):
    def metadata(self) -> FilterInfo:
        return FilterInfo("py-greeter", "0.1.0", [Phase.REQUEST_HEADERS, Phase.RESPONSE_HEADERS])

    def configure(self, config: str) -> None:
        global GREETING
        try:
            parsed = json.loads(config) if config.strip() else {}
        except ValueError as e:
            raise Err(f"invalid JSON config: {e}")
        if not isinstance(parsed, dict):
            raise Err("config must be a JSON object")
        for key in parsed:
            if key != "greeting":
                raise Err(f"unknown key: {key}")
        greeting = parsed.get("greeting", "hello from python")
        if not isinstance(greeting, str):
            raise Err("greeting must be a string")
        GREETING = greeting

    def on_request(self, request: Request) -> RequestAction:
        if request.header("x-block") is not None:
            headers = [Header("content-type", b"application/json")]
            return RequestAction_Respond(Response(418, headers, b'{"error":"blocked_by_python"}'))
        return RequestAction_Continue(RequestMutations(
            remove_headers=[],
            set_headers=[Header("x-python-greeting", GREETING.encode())],
            append_headers=[],
            path=None,
            body=None,
            upstream=None,
            variables=[Variable("python.seen", request.path())],
            response_headers=[],
        ))

    def on_response(self, request: Request, response: ResponseView) -> ResponseAction:
        return ResponseAction_Continue(ResponseMutations(
            status=None, remove_headers=[], set_headers=[Header("x-python", b"1")],
            append_headers=[], body=None,
        ))
