// js-greeter: a small Weir filter written in JavaScript (componentize-js), the twin of
// tests/python-plugin/app.py.
//
// Requests carrying an `x-block` header are answered at once with 418; the others get an
// `x-js-greeting` header and a `js.seen` variable. Every response gets `x-js: 1`.
// Config (JSON, optional): {"greeting": "..."}; any other key is refused.

const encoder = new TextEncoder();
let greeting = "hello from js";

export const filter = {
  metadata() {
    return {
      name: "js-greeter",
      version: "0.1.0",
      phases: ["request-headers", "response-headers"],
    };
  },

  // `result<_, string>`: returning is `ok`, a thrown string is the `err`.
  configure(config) {
    let parsed = {};
    if (config.trim() !== "") {
      try {
        parsed = JSON.parse(config);
      } catch (e) {
        throw `invalid JSON config: ${e.message}`;
      }
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      throw "config must be a JSON object";
    }
    for (const key of Object.keys(parsed)) {
      if (key !== "greeting") throw `unknown key: ${key}`;
    }
    const value = parsed.greeting ?? "hello from js";
    if (typeof value !== "string") throw "greeting must be a string";
    greeting = value;
  },

  onRequest(request) {
    if (request.header("x-block") !== undefined) {
      return {
        tag: "respond",
        val: {
          status: 418,
          headers: [{ name: "content-type", value: encoder.encode("application/json") }],
          body: encoder.encode('{"error":"blocked_by_js"}'),
        },
      };
    }
    return {
      tag: "continue",
      val: {
        removeHeaders: [],
        setHeaders: [{ name: "x-js-greeting", value: encoder.encode(greeting) }],
        appendHeaders: [],
        path: undefined,
        body: undefined,
        upstream: undefined,
        variables: [{ key: "js.seen", value: request.path() }],
        responseHeaders: [],
      },
    };
  },

  onResponse(_request, _response) {
    return {
      tag: "continue",
      val: {
        status: undefined,
        removeHeaders: [],
        setHeaders: [{ name: "x-js", value: encoder.encode("1") }],
        appendHeaders: [],
        body: undefined,
      },
    };
  },
};
