// Drives a live agent's /jolokia with the Jolokia project's own client, jolokia.js 2 and its simple API
// (@jolokia.js/simple), the way a console built on them would.
//
// stdin: {"url": ".../jolokia", "username": "...", "password": "...", "options": {...}?,
//         "calls": [{"call": "getAttribute", "args": [...]}, {"call": "request", "args": [request, options]}, ...]}
// stdout: one JSON array, an entry per call in order:
//   {"ok": true, "value": <what the call resolved to>, "type": <its JavaScript typeof>}
//   {"ok": false, "error": <what it threw, as text>}
// A call is one of the client's methods: request, getAttribute, setAttribute, execute, search, list,
// version, addNotificationListener. HTTPS is checked against NODE_EXTRA_CA_CERTS (the network's root).

import Jolokia from "@jolokia.js/simple";

// jolokia.js sends basic auth through window.btoa, as in a browser.
globalThis.window ??= globalThis;

const CALLS = new Set([
  "request",
  "getAttribute",
  "setAttribute",
  "execute",
  "search",
  "list",
  "version",
  "addNotificationListener",
]);

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

function described(error) {
  if (error instanceof Error) {
    return `${error.name}: ${error.message}`;
  }
  if (typeof Response !== "undefined" && error instanceof Response) {
    return `HTTP ${error.status}`;
  }
  return typeof error === "string" ? error : JSON.stringify(error);
}

const input = await readStdin();
const jolokia = new Jolokia({
  url: input.url,
  username: input.username,
  password: input.password,
  fetchError: "ignore",
  ...(input.options ?? {}),
});
const results = [];
for (const { call, args } of input.calls) {
  if (!CALLS.has(call)) {
    results.push({ ok: false, error: `the driver does not know ${call}` });
    continue;
  }
  try {
    const value = await jolokia[call](...(args ?? []));
    results.push({ ok: true, value: value === undefined ? null : value, type: typeof value });
  } catch (error) {
    results.push({ ok: false, error: described(error) });
  }
}
process.stdout.write(JSON.stringify(results) + "\n");
