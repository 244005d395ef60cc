// Removes, from the global object it runs in, what an ES5 engine with
// XMLHttpRequest lacks: the ES2015+ globals and methods a client might
// reach for. The legacy build's tests run it before the client (in a
// Node vm context here, in a Chromium page in test/legacy_browser_test.go),
// so a use of any of these fails the test. Itself ES5.
(function (g) {
  var globals = ["Promise", "Map", "Set", "WeakMap", "WeakSet", "Symbol", "Proxy", "Reflect",
    "URL", "URLSearchParams", "AbortController", "TextDecoder", "TextEncoder", "queueMicrotask", "fetch"];
  var methods = {
    Object: ["assign", "setPrototypeOf", "entries", "values", "is"],
    Array: ["from", "of"],
    "Array.prototype": ["find", "findIndex", "includes", "fill", "flat", "flatMap", "at"],
    "String.prototype": ["startsWith", "endsWith", "includes", "repeat", "padStart", "padEnd", "trimStart", "trimEnd"],
    Number: ["isNaN", "isInteger", "isFinite"]
  };
  var i, k, o;
  for (i = 0; i < globals.length; i++) delete g[globals[i]];
  for (k in methods) {
    o = k === "Array.prototype" ? Array.prototype : k === "String.prototype" ? String.prototype : g[k];
    for (i = 0; i < methods[k].length; i++) delete o[methods[k][i]];
  }
})(this);
