// The chat accounts whose "/" messages are the inbox's ops commands (the
// inbox's allowlist), kept in memory and in one small JSON file so a gateway
// restart holds the agent before the inbox has reconnected and synced again.
import fs from "node:fs";
import path from "node:path";

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
  #file;
  #senders = new Set(); // keyOf(channel, senderId)
  #signature;
  loadError = null;

  constructor(file) {
    this.#file = file;
  }

  /** Never throws: it runs inside the gateway's hooks. */
  has(channel, senderId) {
    if (typeof channel !== "string" || typeof senderId !== "string") return false;
    this.#refresh();
    return this.#senders.has(keyOf(channel.trim().toLowerCase(), senderId.trim()));
  }

  list() {
    this.#refresh();
    return [...this.#senders]
      .map((key) => {
        const [channel, senderId] = key.split("\u0000");
        return { channel, senderId };
      })
      .sort((a, b) => keyOf(a.channel, a.senderId).localeCompare(keyOf(b.channel, b.senderId)));
  }

  /** Replace the whole set; saved before it takes effect. */
  sync(senders) {
    this.#refresh();
    const next = new Set(senders.map(({ channel, senderId }) => keyOf(channel, senderId)));
    const added = [...next].filter((key) => !this.#senders.has(key)).length;
    const removed = [...this.#senders].filter((key) => !next.has(key)).length;
    if (added || removed) this.#save(next);
    return { added, removed, total: next.size };
  }

  #refresh() {
    let stat;
    try {
      stat = fs.statSync(this.#file, { bigint: true });
    } catch (err) {
      if (err.code !== "ENOENT") {
        this.loadError = `cannot stat ${this.#file}: ${err.message}`;
        return;
      }
      if (this.#signature !== "missing") this.#senders = new Set();
      this.#signature = "missing";
      this.loadError = null;
      return;
    }
    const signature = `${stat.ino}:${stat.mtimeNs}:${stat.size}`;
    if (signature === this.#signature) return;
    try {
      const body = JSON.parse(fs.readFileSync(this.#file, "utf8"));
      if (body?.version !== FILE_VERSION || !Array.isArray(body.senders)) {
        throw new Error(`unsupported format (expected version ${FILE_VERSION})`);
      }
      this.#senders = new Set(
        body.senders
          .filter((s) => typeof s?.channel === "string" && typeof s?.senderId === "string")
          .map((s) => keyOf(s.channel, s.senderId)),
      );
      this.loadError = null;
    } catch (err) {
      // Unreadable: no sender is an ops sender (the agent answers them as
      // anyone else) until the inbox's next sync rewrites the file.
      this.#senders = new Set();
      this.loadError = `cannot read ${this.#file}: ${err.message}`;
    }
    this.#signature = signature;
  }

  #save(senders) {
    const body = {
      version: FILE_VERSION,
      senders: [...senders].map((key) => {
        const [channel, senderId] = key.split("\u0000");
        return { channel, senderId };
      }),
    };
    const tmp = `${this.#file}.${process.pid}.tmp`;
    fs.mkdirSync(path.dirname(this.#file), { recursive: true, mode: 0o700 });
    fs.writeFileSync(tmp, JSON.stringify(body, null, 1) + "\n", { mode: 0o600 });
    fs.renameSync(tmp, this.#file);
    const stat = fs.statSync(this.#file, { bigint: true });
    this.#signature = `${stat.ino}:${stat.mtimeNs}:${stat.size}`;
    this.#senders = senders;
    this.loadError = null;
  }
}
