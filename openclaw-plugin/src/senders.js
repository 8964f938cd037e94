// The chat accounts whose "/" messages are the inbox's ops commands (the
// inbox's allowlist), kept in memory and in one small JSON file so a gateway
// restart holds the agent before the inbox has reconnected and synced again.
import { StateFile } from "./state-file.js";
import { ParamError } from "./store.js";

export const MAX_SENDERS = 1_000;
const MAX_PART_LENGTH = 255;
const FILE_VERSION = 1;

// What the inbox takes for a command (operations/chat.py COMMAND): "/" then a
// letter. Anything it would not parse must reach the agent as usual.
const COMMAND = /^\/[A-Za-z]/;

/** Whether a message's text is one the inbox runs as a command. */
export function isCommandText(text) {
  return typeof text === "string" && COMMAND.test(text.trim());
}

/**
 * Whether a session is a direct chat: the inbox never runs a command sent to
 * a group or channel (its answer would reach everyone there), so such a
 * message is a customer message the agent must answer.
 */
export function isDirectSession(sessionKey) {
  if (typeof sessionKey !== "string") return false;
  const key = sessionKey.toLowerCase();
  return !key.includes(":group:") && !key.includes(":channel:");
}

/** `{channel, senderId}` from RPC params, canonical; throws ParamError. */
export function normalizeSender(item, where) {
  if (typeof item !== "object" || item === null || Array.isArray(item)) {
    throw new ParamError(`${where} must be an object`);
  }
  const parts = {};
  for (const field of ["channel", "senderId"]) {
    const value = item[field];
    if (typeof value !== "string" || !value.trim() || value.trim().length > MAX_PART_LENGTH) {
      throw new ParamError(`${where}.${field} must be a non-empty string`);
    }
    parts[field] = value.trim();
  }
  return { channel: parts.channel.toLowerCase(), senderId: parts.senderId };
}

const keyOf = (channel, senderId) => `${channel}\u0000${senderId}`;

export class CommandSenders {
  #state;

  constructor(file) {
    this.#state = new StateFile(file, { parse: parseFile, empty: () => new Set() });
  }

  /** Why the file could not be read, or null. */
  get loadError() {
    return this.#state.loadError;
  }

  /** Never throws: it runs inside the gateway's hooks. */
  has(channel, senderId) {
    if (typeof channel !== "string" || typeof senderId !== "string") return false;
    return this.#state.read().has(keyOf(channel.trim().toLowerCase(), senderId.trim()));
  }

  list() {
    return [...this.#state.read()].map(senderOf).sort((a, b) =>
      keyOf(a.channel, a.senderId).localeCompare(keyOf(b.channel, b.senderId)),
    );
  }

  /** Replace the whole set; saved before it takes effect. */
  sync(senders) {
    const before = this.#state.read();
    const next = new Set(senders.map(({ channel, senderId }) => keyOf(channel, senderId)));
    const added = [...next].filter((key) => !before.has(key)).length;
    const removed = [...before].filter((key) => !next.has(key)).length;
    if (added || removed) {
      this.#state.write(next, { version: FILE_VERSION, senders: [...next].map(senderOf) });
    }
    return { added, removed, total: next.size };
  }
}

function senderOf(key) {
  const [channel, senderId] = key.split("\u0000");
  return { channel, senderId };
}

function parseFile(text) {
  const body = JSON.parse(text);
  if (body?.version !== FILE_VERSION || !Array.isArray(body.senders)) {
    throw new Error(`unsupported format (expected version ${FILE_VERSION})`);
  }
  return new Set(
    body.senders
      .filter((s) => typeof s?.channel === "string" && typeof s?.senderId === "string")
      .map((s) => keyOf(s.channel, s.senderId)),
  );
}
