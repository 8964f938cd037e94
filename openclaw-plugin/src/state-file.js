// One small JSON state file of the plugin: read again whenever another writer
// replaced it, written atomically. The takeover store and the ops senders
// each keep theirs in one.
import fs from "node:fs";
import path from "node:path";

export class StateFile {
  #file;
  #parse;
  #empty;
  #value;
  #signature; // identity of the file version #value was read from
  loadError = null;

  /**
   * `parse(text)` gives the value a file holds (it throws on a bad file);
   * `empty()` the value with no file, or with one that cannot be read.
   */
  constructor(file, { parse, empty }) {
    this.#file = file;
    this.#parse = parse;
    this.#empty = empty;
    this.#value = empty();
  }

  get file() {
    return this.#file;
  }

  // Every save is a rename, so a new inode means new content: two plugin
  // instances (e.g. during a hot reload) never act on different sets. A file
  // that cannot be read gives the empty value (the agent answers as usual)
  // until the inbox's next sync rewrites it.
  read() {
    let stat;
    try {
      stat = fs.statSync(this.#file, { bigint: true });
    } catch (err) {
      if (err.code !== "ENOENT") {
        this.loadError = `cannot stat ${this.#file}: ${err.message}`;
        return this.#value; // keep the last known value
      }
      if (this.#signature !== "missing") this.#value = this.#empty();
      this.#signature = "missing";
      this.loadError = null;
      return this.#value;
    }
    const signature = `${stat.ino}:${stat.mtimeNs}:${stat.size}`;
    if (signature === this.#signature) return this.#value;
    try {
      this.#value = this.#parse(fs.readFileSync(this.#file, "utf8"));
      this.loadError = null;
    } catch (err) {
      this.#value = this.#empty();
      this.loadError = `cannot read ${this.#file}: ${err.message}`;
    }
    this.#signature = signature;
    return this.#value;
  }

  /** Keep `value`, saved as the JSON `body` first. */
  write(value, body) {
    const tmp = `${this.#file}.${process.pid}.tmp`;
    fs.mkdirSync(path.dirname(this.#file), { recursive: true, mode: 0o700 });
    fs.writeFileSync(tmp, JSON.stringify(body, null, 1) + "\n", { mode: 0o600 });
    fs.renameSync(tmp, this.#file); // atomic: a crash leaves the old or the new file, never half of one
    const stat = fs.statSync(this.#file, { bigint: true });
    this.#signature = `${stat.ino}:${stat.mtimeNs}:${stat.size}`;
    this.#value = value;
    this.loadError = null;
  }
}
