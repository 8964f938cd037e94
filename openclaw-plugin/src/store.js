// The set of human-owned sessions, kept in memory and in one small JSON file.
import { StateFile } from "./state-file.js";

export const MAX_SESSIONS = 10_000;
const MAX_KEY_LENGTH = 512;
const MAX_OWNER_LENGTH = 200;
const FILE_VERSION = 1;

/** Bad RPC params: the caller must fix the request, retrying will not help. */
export class ParamError extends Error {}

/**
 * Canonical form of a session key. The gateway lowercases keys (chat.send with
 * "agent:main:Web-X" is stored and reported as "agent:main:web-x"), so a key
 * the inbox spells differently must still match the hook's ctx.sessionKey.
 */
export function normalizeSessionKey(value) {
  if (typeof value !== "string") throw new ParamError("sessionKey must be a string");
  const key = value.trim().toLowerCase();
  if (key.length > MAX_KEY_LENGTH || !/^agent:[^:]+:.+$/.test(key)) {
    throw new ParamError(`sessionKey must look like "agent:<agentId>:<rest>", got ${JSON.stringify(value)}`);
  }
  return key;
}

/** A display name, or null (release). */
export function normalizeOwner(value) {
  if (value === null) return null;
  if (typeof value !== "string" || !value.trim()) {
    throw new ParamError("owner must be a non-empty string, or null to release");
  }
  const owner = value.trim();
  if (owner.length > MAX_OWNER_LENGTH) throw new ParamError(`owner is longer than ${MAX_OWNER_LENGTH} characters`);
  return owner;
}

export class TakeoverStore {
  #state;
  #now;

  constructor(file, { now = () => new Date() } = {}) {
    this.#state = new StateFile(file, { parse: parseFile, empty: () => new Map() });
    this.#now = now;
  }

  get file() {
    return this.#state.file;
  }

  /** Why the file could not be read, or null. */
  get loadError() {
    return this.#state.loadError;
  }

  /** Owner of a session, or undefined. Never throws: it runs inside the gateway's hooks. */
  ownerOf(sessionKey) {
    if (typeof sessionKey !== "string") return undefined;
    return this.#state.read().get(sessionKey.trim().toLowerCase())?.owner;
  }

  list() {
    return [...this.#state.read()]
      .map(([sessionKey, entry]) => ({ sessionKey, ...entry }))
      .sort((a, b) => a.sessionKey.localeCompare(b.sessionKey));
  }

  /** Take over (owner) or release (null) one session. Saved before it takes effect. */
  set(sessionKey, owner) {
    const sessions = this.#state.read();
    const before = sessions.get(sessionKey);
    if ((before?.owner ?? null) === owner) return { changed: false, entry: before ?? null };
    const next = new Map(sessions);
    if (owner === null) next.delete(sessionKey);
    else next.set(sessionKey, { owner, since: this.#now().toISOString() });
    this.#save(next);
    return { changed: true, entry: next.get(sessionKey) ?? null };
  }

  /** Replace the whole set; an owner that did not change keeps its "since". A key listed twice: the last wins. */
  sync(entries) {
    const sessions = this.#state.read();
    const wanted = new Map(entries.map(({ sessionKey, owner }) => [sessionKey, owner]));
    const next = new Map();
    let added = 0;
    let updated = 0;
    for (const [sessionKey, owner] of wanted) {
      const before = sessions.get(sessionKey);
      if (before?.owner === owner) next.set(sessionKey, before);
      else next.set(sessionKey, { owner, since: this.#now().toISOString() });
      if (!before) added += 1;
      else if (before.owner !== owner) updated += 1;
    }
    const removed = [...sessions.keys()].filter((key) => !next.has(key)).length;
    if (added || updated || removed) this.#save(next);
    return { added, updated, removed, total: next.size };
  }

  #save(sessions) {
    this.#state.write(sessions, { version: FILE_VERSION, sessions: Object.fromEntries(sessions) });
  }
}

function parseFile(text) {
  const body = JSON.parse(text);
  if (body?.version !== FILE_VERSION || typeof body.sessions !== "object" || body.sessions === null) {
    throw new Error(`unsupported format (expected version ${FILE_VERSION})`);
  }
  const sessions = new Map();
  for (const [key, entry] of Object.entries(body.sessions)) {
    if (typeof entry?.owner === "string" && entry.owner) {
      sessions.set(key.trim().toLowerCase(), { owner: entry.owner, since: String(entry.since ?? "") });
    }
  }
  return sessions;
}
