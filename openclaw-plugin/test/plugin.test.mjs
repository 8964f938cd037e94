// The plugin's real register() against a fake gateway api that records what it registers.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, test } from "node:test";

import plugin, { COMMAND_REPLY_TEXT, COMMAND_TURN_MS, HELD_REPLY_TEXT, PLUGIN_ID } from "../index.js";

const TG = "agent:main:telegram:direct:881580";
const WEB = "agent:main:web-abc";

let stateDir;
beforeEach(() => {
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "inbox-takeover-plugin-"));
});
afterEach(() => fs.rmSync(stateDir, { recursive: true, force: true }));

function loadPlugin({ allowConversationAccess = true, registrationMode = "full", pluginConfig = {} } = {}) {
  const hooks = {};
  const methods = {};
  const warnings = [];
  const api = {
    id: PLUGIN_ID,
    registrationMode,
    pluginConfig,
    config: { plugins: { entries: { [PLUGIN_ID]: { enabled: true, hooks: { allowConversationAccess } } } } },
    runtime: { state: { resolveStateDir: () => stateDir } },
    logger: { info() {}, warn: (m) => warnings.push(m), error() {} },
    on: (name, handler, opts) => (hooks[name] = { handler, opts }),
    registerGatewayMethod: (name, handler, opts) => (methods[name] = { handler, opts }),
  };
  plugin.register(api);
  // Calls a gateway method the way the gateway does and returns what it responded.
  const call = (name, params) => {
    let response;
    methods[name].handler({ params, respond: (ok, payload, error) => (response = { ok, payload, error }) });
    return response;
  };
  return { hooks, methods, warnings, call };
}

// The gateway passes the session in ctx; the event only carries the prompt.
const agentReply = (p, sessionKey) => p.hooks.before_agent_reply.handler({ cleanedBody: "hi" }, { sessionKey, trigger: "user" });
const payloadSending = (p, sessionKey) =>
  p.hooks.reply_payload_sending.handler({ payload: { text: "bot: hi" }, kind: "final", sessionKey }, { sessionKey });

test("the entry is a plain plugin object matching the manifest", () => {
  const manifest = JSON.parse(fs.readFileSync(new URL("../openclaw.plugin.json", import.meta.url), "utf8"));
  assert.equal(plugin.id, manifest.id);
  assert.equal(typeof plugin.register, "function");
});

test("registers two hooks and five methods with their scopes", () => {
  const p = loadPlugin();
  assert.deepEqual(Object.keys(p.hooks).sort(), ["before_agent_reply", "reply_payload_sending"]);
  assert.deepEqual(
    Object.fromEntries(Object.entries(p.methods).map(([name, m]) => [name, m.opts.scope])),
    {
      "inbox.takeover.set": "operator.write",
      "inbox.takeover.sync": "operator.write",
      "inbox.takeover.list": "operator.read",
      "inbox.commands.sync": "operator.write",
      "inbox.commands.list": "operator.read",
    },
  );
  assert.deepEqual(p.warnings, []);
});

test("a session nobody owns: the bot runs and its replies go out", () => {
  const p = loadPlugin();
  assert.equal(agentReply(p, TG), undefined);
  assert.equal(payloadSending(p, TG), undefined);
});

test("an owned session: the model turn is claimed and every bot payload is cancelled", () => {
  const p = loadPlugin();
  p.call("inbox.takeover.set", { sessionKey: TG, owner: "Alice" });
  assert.deepEqual(agentReply(p, TG), {
    handled: true,
    reply: { text: HELD_REPLY_TEXT },
    reason: "human takeover (Alice)",
  });
  assert.deepEqual(payloadSending(p, TG), { cancel: true });
  // other sessions are untouched
  assert.equal(agentReply(p, WEB), undefined);
  assert.equal(payloadSending(p, WEB), undefined);
});

test("a hook call without a session key is never claimed", () => {
  const p = loadPlugin();
  p.call("inbox.takeover.set", { sessionKey: TG, owner: "Alice" });
  assert.equal(p.hooks.before_agent_reply.handler({ cleanedBody: "hi" }, {}), undefined);
  assert.equal(p.hooks.reply_payload_sending.handler({ payload: {} }, undefined), undefined);
});

test("reply_payload_sending falls back to the event's session key", () => {
  const p = loadPlugin();
  p.call("inbox.takeover.set", { sessionKey: TG, owner: "Alice" });
  assert.deepEqual(p.hooks.reply_payload_sending.handler({ payload: {}, sessionKey: TG }, {}), { cancel: true });
});

test("release lets the bot answer again", () => {
  const p = loadPlugin();
  p.call("inbox.takeover.set", { sessionKey: TG, owner: "Alice" });
  const released = p.call("inbox.takeover.set", { sessionKey: TG, owner: null });
  assert.deepEqual(released, {
    ok: true,
    payload: { sessionKey: TG, owner: null, since: null, changed: true, enforcing: true },
    error: undefined,
  });
  assert.equal(agentReply(p, TG), undefined);
});

test("set answers with the canonical key and the stored entry", () => {
  const p = loadPlugin();
  const { ok, payload } = p.call("inbox.takeover.set", { sessionKey: "agent:main:Web-ABC", owner: " Alice " });
  assert.equal(ok, true);
  assert.equal(payload.sessionKey, WEB);
  assert.equal(payload.owner, "Alice");
  assert.equal(payload.changed, true);
  assert.equal(payload.enforcing, true);
  assert.match(payload.since, /^\d{4}-\d\d-\d\dT/);
  assert.equal(agentReply(p, WEB).handled, true);
});

test("sync replaces the set; list shows it", () => {
  const p = loadPlugin();
  p.call("inbox.takeover.set", { sessionKey: TG, owner: "Alice" });
  const synced = p.call("inbox.takeover.sync", { sessions: [{ sessionKey: WEB, owner: "Bob" }] });
  assert.deepEqual(synced.payload, { added: 1, updated: 0, removed: 1, total: 1, enforcing: true });
  assert.equal(agentReply(p, TG), undefined);
  assert.equal(agentReply(p, WEB).handled, true);
  const listed = p.call("inbox.takeover.list", {});
  assert.deepEqual(
    listed.payload.sessions.map(({ sessionKey, owner }) => ({ sessionKey, owner })),
    [{ sessionKey: WEB, owner: "Bob" }],
  );
  assert.equal(listed.payload.enforcing, true);
});

test("the set is persisted in the state dir and read by a fresh plugin instance", () => {
  loadPlugin().call("inbox.takeover.set", { sessionKey: TG, owner: "Alice" });
  const file = path.join(stateDir, PLUGIN_ID, "sessions.json");
  assert.equal(JSON.parse(fs.readFileSync(file, "utf8")).sessions[TG].owner, "Alice");
  assert.equal(agentReply(loadPlugin(), TG).handled, true); // e.g. after a gateway restart
});

test("config stateFile overrides the location", () => {
  const stateFile = path.join(stateDir, "custom", "owned.json");
  loadPlugin({ pluginConfig: { stateFile } }).call("inbox.takeover.set", { sessionKey: TG, owner: "Alice" });
  assert.ok(fs.existsSync(stateFile));
});

for (const [name, params, message] of [
  ["inbox.takeover.set", { owner: "Alice" }, /sessionKey must be a string/],
  ["inbox.takeover.set", { sessionKey: "web-abc", owner: "Alice" }, /agent:<agentId>:<rest>/],
  ["inbox.takeover.set", { sessionKey: TG }, /owner is required/],
  ["inbox.takeover.set", { sessionKey: TG, owner: "" }, /owner must be a non-empty string/],
  ["inbox.takeover.set", { sessionKey: TG, owner: 5 }, /owner must be a non-empty string/],
  ["inbox.takeover.sync", {}, /sessions must be an array/],
  ["inbox.takeover.sync", { sessions: "x" }, /sessions must be an array/],
  ["inbox.takeover.sync", { sessions: [null] }, /sessions\[0\] must be an object/],
  ["inbox.takeover.sync", { sessions: [{ sessionKey: TG, owner: null }] }, /sessions\[0\]\.owner/],
  ["inbox.takeover.sync", { sessions: [{ sessionKey: "nope", owner: "Alice" }] }, /agent:<agentId>:<rest>/],
]) {
  test(`${name} ${JSON.stringify(params)} is refused as INVALID_REQUEST and changes nothing`, () => {
    const p = loadPlugin();
    p.call("inbox.takeover.set", { sessionKey: WEB, owner: "Bob" });
    const { ok, error } = p.call(name, params);
    assert.equal(ok, false);
    assert.equal(error.code, "INVALID_REQUEST");
    assert.match(error.message, message);
    assert.equal(agentReply(p, WEB).handled, true);
  });
}

test("missing params count as an empty object; other non-objects are refused", () => {
  const p = loadPlugin();
  assert.equal(p.call("inbox.takeover.list", undefined).ok, true);
  assert.equal(p.call("inbox.takeover.set", undefined).error.code, "INVALID_REQUEST");
  for (const params of ["x", 3, [], true]) {
    assert.equal(p.call("inbox.takeover.set", params).error.code, "INVALID_REQUEST");
  }
});

test("too many sessions in one sync are refused", () => {
  const p = loadPlugin();
  const sessions = Array.from({ length: 10_001 }, (_, i) => ({ sessionKey: `agent:main:web-${i}`, owner: "A" }));
  assert.match(p.call("inbox.takeover.sync", { sessions }).error.message, /at most 10000/);
});

test("a state file that cannot be written is UNAVAILABLE and retryable", () => {
  fs.writeFileSync(path.join(stateDir, PLUGIN_ID), "a file where the directory should be");
  const p = loadPlugin();
  const { ok, error } = p.call("inbox.takeover.set", { sessionKey: TG, owner: "Alice" });
  assert.equal(ok, false);
  assert.equal(error.code, "UNAVAILABLE");
  assert.equal(error.retryable, true);
  assert.equal(agentReply(p, TG), undefined);
});

test("a corrupt state file is reported by list", () => {
  fs.mkdirSync(path.join(stateDir, PLUGIN_ID));
  fs.writeFileSync(path.join(stateDir, PLUGIN_ID, "sessions.json"), "garbage");
  const { payload } = loadPlugin().call("inbox.takeover.list", {});
  assert.deepEqual(payload.sessions, []);
  assert.match(payload.stateError, /cannot read/);
});

test("without allowConversationAccess the gateway drops the claim hook: warn, and say so in every result", () => {
  const p = loadPlugin({ allowConversationAccess: false });
  assert.match(p.warnings.join("\n"), /allowConversationAccess=true/);
  assert.equal(p.call("inbox.takeover.set", { sessionKey: TG, owner: "Alice" }).payload.enforcing, false);
  assert.equal(p.call("inbox.takeover.list", {}).payload.enforcing, false);
});

test("CLI-metadata loads register nothing (the runtime is unavailable there)", () => {
  const p = loadPlugin({ registrationMode: "cli-metadata" });
  assert.deepEqual(p.hooks, {});
  assert.deepEqual(p.methods, {});
});

// -- ops commands: the inbox answers an allowlisted admin's "/..." itself -----------

const ADMIN = "881580";
// What the real gateway passes for a Telegram direct message (see the README's probe).
const telegramTurn = (p, text, { senderId = ADMIN, sessionKey = TG, trigger = "user" } = {}) =>
  p.hooks.before_agent_reply.handler(
    { cleanedBody: text },
    { sessionKey, trigger, channel: "telegram", messageProvider: "telegram", senderId },
  );
const commandPayload = (p, text) =>
  p.hooks.reply_payload_sending.handler({ payload: { text }, kind: "final", sessionKey: TG }, { sessionKey: TG });

test("an allowlisted sender's command: the turn is claimed and its payload cancelled", () => {
  const p = loadPlugin();
  const synced = p.call("inbox.commands.sync", { senders: [{ channel: "telegram", senderId: ADMIN }] });
  assert.deepEqual(synced.payload, { added: 1, removed: 0, total: 1, enforcing: true });
  for (const text of ["/digest", " /logs 5", "/ops status", "/Digest@InboxBot"]) {
    assert.deepEqual(telegramTurn(p, text), {
      handled: true,
      reply: { text: COMMAND_REPLY_TEXT },
      reason: "inbox ops command",
    });
  }
  assert.deepEqual(commandPayload(p, COMMAND_REPLY_TEXT), { cancel: true });
  // and the gateway's "couldn't produce or deliver a reply" notice that follows it
  assert.deepEqual(commandPayload(p, "⚠️ OpenClaw couldn't produce or deliver a reply."), { cancel: true });
});

test("the session is not held: the admin's next ordinary message is answered", () => {
  const p = loadPlugin();
  p.call("inbox.commands.sync", { senders: [{ channel: "telegram", senderId: ADMIN }] });
  assert.equal(telegramTurn(p, "/digest").handled, true);
  assert.equal(telegramTurn(p, "thanks"), undefined);
  assert.equal(commandPayload(p, "bot: thanks"), undefined);
  assert.equal(payloadSending(p, WEB), undefined); // other sessions never were
});

test("the turn's silence is seen by every instance of the plugin (the gateway hooks them apart)", () => {
  const hooking = loadPlugin();
  hooking.call("inbox.commands.sync", { senders: [{ channel: "telegram", senderId: ADMIN }] });
  assert.equal(telegramTurn(hooking, "/digest").handled, true);
  assert.deepEqual(commandPayload(loadPlugin(), "⚠️ OpenClaw couldn't produce or deliver a reply."), { cancel: true });
});

test("a command turn's silence ends after COMMAND_TURN_MS at the latest", (t) => {
  t.mock.timers.enable({ apis: ["Date"], now: 1_000_000 });
  const p = loadPlugin();
  p.call("inbox.commands.sync", { senders: [{ channel: "telegram", senderId: ADMIN }] });
  telegramTurn(p, "/digest");
  t.mock.timers.tick(COMMAND_TURN_MS + 1);
  assert.equal(commandPayload(p, "a later notice"), undefined);
});

test("the agent answers whatever is not an allowlisted sender's direct command", () => {
  const p = loadPlugin();
  p.call("inbox.commands.sync", { senders: [{ channel: "telegram", senderId: ADMIN }] });
  assert.equal(telegramTurn(p, "hello"), undefined); // the admin chatting
  assert.equal(telegramTurn(p, "/ digest"), undefined); // the inbox would not parse it
  assert.equal(telegramTurn(p, "/5"), undefined);
  assert.equal(telegramTurn(p, "/digest", { senderId: "999" }), undefined); // a stranger
  assert.equal(telegramTurn(p, "/digest", { sessionKey: "agent:main:telegram:group:-100" }), undefined);
  assert.equal(telegramTurn(p, "/digest", { trigger: "heartbeat" }), undefined);
  assert.equal(
    p.hooks.before_agent_reply.handler({ cleanedBody: "/digest" }, { sessionKey: TG, channel: "discord", senderId: ADMIN }),
    undefined,
  );
  assert.equal(p.hooks.before_agent_reply.handler({}, { sessionKey: TG, channel: "telegram", senderId: ADMIN }), undefined);
});

test("messageProvider stands in for a missing channel", () => {
  const p = loadPlugin();
  p.call("inbox.commands.sync", { senders: [{ channel: "Telegram", senderId: ` ${ADMIN} ` }] });
  const ctx = { sessionKey: TG, trigger: "user", messageProvider: "telegram", senderId: ADMIN };
  assert.equal(p.hooks.before_agent_reply.handler({ cleanedBody: "/digest" }, ctx).handled, true);
});

test("commands sync replaces the allowlist; list shows it; a fresh instance reads it", () => {
  const p = loadPlugin();
  p.call("inbox.commands.sync", { senders: [{ channel: "telegram", senderId: ADMIN }] });
  const synced = p.call("inbox.commands.sync", { senders: [{ channel: "slack", senderId: "U1" }] });
  assert.deepEqual(synced.payload, { added: 1, removed: 1, total: 1, enforcing: true });
  assert.equal(telegramTurn(p, "/digest"), undefined);
  assert.deepEqual(p.call("inbox.commands.list", {}).payload.senders, [{ channel: "slack", senderId: "U1" }]);
  const fresh = loadPlugin(); // e.g. after a gateway restart, before the inbox reconnects
  assert.deepEqual(fresh.call("inbox.commands.list", {}).payload.senders, [{ channel: "slack", senderId: "U1" }]);
  assert.ok(fs.existsSync(path.join(stateDir, PLUGIN_ID, "command-senders.json")));
  p.call("inbox.commands.sync", { senders: [] });
  assert.deepEqual(fresh.call("inbox.commands.list", {}).payload.senders, []);
});

test("a takeover still wins over a command: the held reply, not the command's", () => {
  const p = loadPlugin();
  p.call("inbox.commands.sync", { senders: [{ channel: "telegram", senderId: ADMIN }] });
  p.call("inbox.takeover.set", { sessionKey: TG, owner: "Alice" });
  assert.equal(telegramTurn(p, "/digest").reply.text, HELD_REPLY_TEXT);
});

for (const [params, message] of [
  [{}, /senders must be an array/],
  [{ senders: {} }, /senders must be an array/],
  [{ senders: [null] }, /senders\[0\] must be an object/],
  [{ senders: [{ channel: "telegram" }] }, /senders\[0\]\.senderId/],
  [{ senders: [{ channel: " ", senderId: "1" }] }, /senders\[0\]\.channel/],
  [{ senders: [{ channel: "telegram", senderId: 5 }] }, /senders\[0\]\.senderId/],
]) {
  test(`inbox.commands.sync ${JSON.stringify(params)} is refused and changes nothing`, () => {
    const p = loadPlugin();
    p.call("inbox.commands.sync", { senders: [{ channel: "telegram", senderId: ADMIN }] });
    const { ok, error } = p.call("inbox.commands.sync", params);
    assert.equal(ok, false);
    assert.equal(error.code, "INVALID_REQUEST");
    assert.match(error.message, message);
    assert.equal(telegramTurn(p, "/digest").handled, true);
  });
}

test("too many senders in one sync are refused", () => {
  const p = loadPlugin();
  const senders = Array.from({ length: 1_001 }, (_, i) => ({ channel: "telegram", senderId: String(i) }));
  assert.match(p.call("inbox.commands.sync", { senders }).error.message, /at most 1000/);
});
