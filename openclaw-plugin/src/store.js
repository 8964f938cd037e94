// The set of human-owned sessions, kept in memory and in one small JSON file.
import fs from "node:fs";
import path from "node:path";

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
  #file;
  #now;
  #sessions = new Map(); // sessionKey -> { owner, since }
  #signature; // identity of the file version #sessions was read from
  loadError = null;

  constructor(file, { now = () => new Date() } = {}) {
    this.#file = file;
    this.#now = now;
  }

  get file() {
    return this.#file;
  }

  /** Owner of a session, or undefined. Never throws: it runs inside the gateway's hooks. */
  ownerOf(sessionKey) {
    if (typeof sessionKey !== "string") return undefined;
    this.#refresh();
    return this.#sessions.get(sessionKey.trim().toLowerCase())?.owner;
  }

  list() {
    this.#refresh();
    return [...this.#sessions]
      .map(([sessionKey, entry]) => ({ sessionKey, ...entry }))
      .sort((a, b) => a.sessionKey.localeCompare(b.sessionKey));
  }

  /** Take over (owner) or release (null) one session. Saved before it takes effect. */
  set(sessionKey, owner) {
    this.#refresh();
    const before = this.#sessions.get(sessionKey);
    if ((before?.owner ?? null) === owner) return { changed: false, entry: before ?? null };
    const next = new Map(this.#sessions);
    if (owner === null) next.delete(sessionKey);
    else next.set(sessionKey, { owner, since: this.#now().toISOString() });
    this.#save(next);
    return { changed: true, entry: next.get(sessionKey) ?? null };
  }

  /** Replace the whole set; an owner that did not change keeps its "since". A key listed twice: the last wins. */
  sync(entries) {
    this.#refresh();
    const wanted = new Map(entries.map(({ sessionKey, owner }) => [sessionKey, owner]));
    const next = new Map();
    let added = 0;
    let updated = 0;
    for (const [sessionKey, owner] of wanted) {
      const before = this.#sessions.get(sessionKey);
      if (before?.owner === owner) next.set(sessionKey, before);
      else next.set(sessionKey, { owner, since: this.#now().toISOString() });
      if (!before) added += 1;
      else if (before.owner !== owner) updated += 1;
    }
    const removed = [...this.#sessions.keys()].filter((key) => !next.has(key)).length;
    if (added || updated || removed) this.#save(next);
    return { added, updated, removed, total: next.size };
  }

  // Re-read the file when another writer replaced it. Every save is a rename,
  // so a new inode means new content; this keeps two plugin instances (e.g.
  // during a hot reload) from acting on different sets.
  #refresh() {
    let stat;
    try {
      stat = fs.statSync(this.#file, { bigint: true });
    } catch (err) {
      if (err.code !== "ENOENT") {
        this.loadError = `cannot stat ${this.#file}: ${err.message}`;
        return; // keep the last known set
      }
      if (this.#signature !== "missing") this.#sessions = new Map();
      this.#signature = "missing";
      this.loadError = null;
      return;
    }
    const signature = `${stat.ino}:${stat.mtimeNs}:${stat.size}`;
    if (signature === this.#signature) return;
    try {
      this.#sessions = parseFile(fs.readFileSync(this.#file, "utf8"));
      this.loadError = null;
    } catch (err) {
      // Unreadable state: no session is treated as human-owned (the bot keeps
      // answering) until the inbox's next sync rewrites the file.
      this.#sessions = new Map();
      this.loadError = `cannot read ${this.#file}: ${err.message}`;
    }
    this.#signature = signature;
  }

  #save(sessions) {
    const body = { version: FILE_VERSION, sessions: Object.fromEntries(sessions) };
    const tmp = `${this.#file}.${process.pid}.tmp`;
    fs.mkdirSync(path.dirname(this.#file), { recursive: true, mode: 0o700 });
    fs.writeFileSync(tmp, JSON.stringify(body, null, 1) + "\n", { mode: 0o600 });
    fs.renameSync(tmp, this.#file); // atomic: a crash leaves the old or the new file, never half of one
    const stat = fs.statSync(this.#file, { bigint: true });
    this.#signature = `${stat.ino}:${stat.mtimeNs}:${stat.size}`;
    this.#sessions = sessions;
    this.loadError = null;
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
