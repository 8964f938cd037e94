// OpenClaw gateway plugin: while the inbox marks a session human-owned, the bot
// makes no model call there and the customer gets no bot message, but the
// customer's messages are still recorded (operators see them as session.message).
// Likewise an allowlisted admin's ops command ("/digest"): the inbox answers it,
// so the agent must not.
import path from "node:path";
import { CommandSenders, MAX_SENDERS, isCommandText, isDirectSession, normalizeSender } from "./src/senders.js";
import { MAX_SESSIONS, ParamError, TakeoverStore, normalizeOwner, normalizeSessionKey } from "./src/store.js";

export const PLUGIN_ID = "inbox-takeover";

// A held turn must end with a reply: a claim without one makes the gateway
// treat the direct chat as "no visible reply", send its own apology and mark
// the webchat run as failed. The reply is cancelled in reply_payload_sending,
// so no channel ever sees this text, and it is not written to the transcript.
export const HELD_REPLY_TEXT = "[inbox-takeover: held for a human operator]";
// The same for an ops command's turn.
export const COMMAND_REPLY_TEXT = "[inbox-takeover: an ops command, answered by the inbox]";
// An ops command's turn is silenced until the session's next turn starts, or
// this long: the gateway follows a cancelled reply with its own "couldn't
// produce or deliver a reply" notice, which must not reach the admin either.
export const COMMAND_TURN_MS = 120_000;

const COMMAND_TURNS = Symbol.for("openclaw-inbox.inbox-takeover.commandTurns");

// Run before other plugins' claims and payload rewrites.
const HOOK_PRIORITY = 1000;

export function register(api) {
  // In these modes the runtime (and so the state dir) is not available.
  if (api.registrationMode === "cli-metadata" || api.registrationMode === "setup-only") return;

  const pluginId = api.id ?? PLUGIN_ID;
  // before_agent_reply is a "conversation" hook: for a non-bundled plugin the
  // gateway drops it (with only a warning) unless this is set, and the bot
  // would then keep answering owned sessions. Every RPC result reports it.
  const enforcing = api.config?.plugins?.entries?.[pluginId]?.hooks?.allowConversationAccess === true;
  if (!enforcing) {
    api.logger?.warn?.(
      `${pluginId}: set plugins.entries.${pluginId}.hooks.allowConversationAccess=true, ` +
        "otherwise the bot keeps answering human-owned sessions",
    );
  }

  // Created on first use: registration must stay cheap (discovery loads also call it).
  let store;
  const getStore = () => (store ??= new TakeoverStore(resolveStateFile(api, pluginId)));
  let senders;
  const getSenders = () =>
    (senders ??= new CommandSenders(path.join(path.dirname(resolveStateFile(api, pluginId)), "command-senders.json")));

  // Sessions whose current turn is an ops command: sessionKey -> when it began.
  // Shared by every instance of this plugin in the process: the gateway runs
  // before_agent_reply and reply_payload_sending on different registrations.
  const commandTurns = (globalThis[COMMAND_TURNS] ??= new Map());
  const inCommandTurn = (sessionKey) => {
    const key = typeof sessionKey === "string" ? sessionKey.trim().toLowerCase() : undefined;
    const since = key === undefined ? undefined : commandTurns.get(key);
    if (since === undefined) return false;
    if (Date.now() - since <= COMMAND_TURN_MS) return true;
    commandTurns.delete(key);
    return false;
  };

  // The gateway records the customer's message before this hook runs, so
  // claiming here keeps the transcript row (and its session.message event)
  // while skipping the model. Earlier claims (before_dispatch) drop the row;
  // a later gate (before_agent_run) sends the customer a "could not be sent" notice.
  api.on(
    "before_agent_reply",
    (event, ctx) => {
      const owner = getStore().ownerOf(ctx?.sessionKey);
      if (owner) return { handled: true, reply: { text: HELD_REPLY_TEXT }, reason: `human takeover (${owner})` };
      const key = typeof ctx?.sessionKey === "string" ? ctx.sessionKey.trim().toLowerCase() : undefined;
      if (key !== undefined) commandTurns.delete(key); // a new turn: the last one's notices are over
      if (key !== undefined && isOpsCommand(event, ctx, getSenders())) {
        commandTurns.set(key, Date.now());
        return { handled: true, reply: { text: COMMAND_REPLY_TEXT }, reason: "inbox ops command" };
      }
      return undefined;
    },
    { priority: HOOK_PRIORITY },
  );

  // Agent replies (ours above, the gateway's fallback notices, and the reply
  // of a run that was already going when the takeover started) pass through
  // here; an operator's `send` does not (it goes through message_sending).
  api.on(
    "reply_payload_sending",
    (event, ctx) => {
      const sessionKey = ctx?.sessionKey ?? event?.sessionKey;
      if (event?.payload?.text === COMMAND_REPLY_TEXT || inCommandTurn(sessionKey)) return { cancel: true };
      return getStore().ownerOf(sessionKey) ? { cancel: true } : undefined;
    },
    { priority: HOOK_PRIORITY },
  );

  const method = (name, scope, handler) =>
    api.registerGatewayMethod(
      name,
      ({ params, respond }) => {
        try {
          const args = params ?? {};
          if (typeof args !== "object" || Array.isArray(args)) throw new ParamError("params must be an object");
          respond(true, { ...handler(args, getStore(), getSenders), enforcing });
        } catch (err) {
          if (err instanceof ParamError) {
            respond(false, undefined, { code: "INVALID_REQUEST", message: err.message });
            return;
          }
          api.logger?.error?.(`${pluginId}: ${name} failed: ${err?.stack ?? err}`);
          respond(false, undefined, {
            code: "UNAVAILABLE",
            message: `takeover state not saved: ${err?.message ?? err}`,
            retryable: true,
          });
        }
      },
      { scope },
    );

  method("inbox.takeover.set", "operator.write", (params, store) => {
    const sessionKey = normalizeSessionKey(params.sessionKey);
    if (!("owner" in params)) throw new ParamError("owner is required (a display name, or null to release)");
    const { changed, entry } = store.set(sessionKey, normalizeOwner(params.owner));
    return { sessionKey, owner: entry?.owner ?? null, since: entry?.since ?? null, changed };
  });

  method("inbox.takeover.sync", "operator.write", (params, store) => {
    if (!Array.isArray(params.sessions)) throw new ParamError("sessions must be an array of {sessionKey, owner}");
    if (params.sessions.length > MAX_SESSIONS) throw new ParamError(`at most ${MAX_SESSIONS} sessions`);
    const entries = params.sessions.map((item, i) => {
      if (typeof item !== "object" || item === null) throw new ParamError(`sessions[${i}] must be an object`);
      const owner = normalizeOwner(item.owner);
      if (owner === null) throw new ParamError(`sessions[${i}].owner must be a non-empty string`);
      return { sessionKey: normalizeSessionKey(item.sessionKey), owner };
    });
    return store.sync(entries);
  });

  method("inbox.takeover.list", "operator.read", (_params, store) => {
    const sessions = store.list();
    return store.loadError ? { sessions, stateError: store.loadError } : { sessions };
  });

  // The inbox's ops-command allowlist, replaced whole (on every connect and
  // whenever an admin changes it).
  method("inbox.commands.sync", "operator.write", (params, _store, senderSet) => {
    if (!Array.isArray(params.senders)) throw new ParamError("senders must be an array of {channel, senderId}");
    if (params.senders.length > MAX_SENDERS) throw new ParamError(`at most ${MAX_SENDERS} senders`);
    const wanted = params.senders.map((item, i) => normalizeSender(item, `senders[${i}]`));
    return senderSet().sync(wanted);
  });

  method("inbox.commands.list", "operator.read", (_params, _store, senderSet) => {
    const list = senderSet().list();
    return senderSet().loadError ? { senders: list, stateError: senderSet().loadError } : { senders: list };
  });
}

// A direct message starting with "/" from an account on the inbox's allowlist.
// The gateway recorded it before this hook, so the inbox still sees it.
function isOpsCommand(event, ctx, senders) {
  if (ctx?.trigger !== undefined && ctx.trigger !== "user") return false;
  if (!isCommandText(event?.cleanedBody) || !isDirectSession(ctx?.sessionKey)) return false;
  const channel = ctx?.channel ?? ctx?.messageProvider;
  return senders.has(channel, ctx?.senderId);
}

function resolveStateFile(api, pluginId) {
  const configured = api.pluginConfig?.stateFile;
  if (typeof configured === "string" && configured.trim()) return path.resolve(configured.trim());
  const stateDir = api.runtime?.state?.resolveStateDir?.(process.env) ?? process.env.OPENCLAW_STATE_DIR;
  if (!stateDir) throw new Error("no OpenClaw state dir; set plugins.entries.inbox-takeover.config.stateFile");
  return path.join(stateDir, pluginId, "sessions.json");
}

export default {
  id: PLUGIN_ID,
  name: "Inbox takeover",
  description: "Holds the bot in sessions an OpenClaw Inbox operator has taken over, and for an admin's ops commands.",
  register,
};
