import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, test } from "node:test";

import { ParamError, TakeoverStore, normalizeOwner, normalizeSessionKey } from "../src/store.js";

const TG = "agent:main:telegram:direct:881580";
const WEB = "agent:main:web-abc";

let dir;
let file;
let clock;
const newStore = () => new TakeoverStore(file, { now: () => new Date(clock) });

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "inbox-takeover-"));
  file = path.join(dir, "nested", "sessions.json");
  clock = Date.parse("2026-12-05T10:00:00Z");
});
// run-tests.mjs loads every test file into one process, so these hooks are
// global: the other file's first test can be running when they are added.
afterEach(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe("set", () => {
  test("a missing file means no session is human-owned", () => {
    const store = newStore();
    assert.equal(store.ownerOf(TG), undefined);
    assert.deepEqual(store.list(), []);
    assert.equal(store.loadError, null);
  });

  test("take over, then release", () => {
    const store = newStore();
    assert.deepEqual(store.set(TG, "Alice"), {
      changed: true,
      entry: { owner: "Alice", since: "2026-12-05T10:00:00.000Z" },
    });
    assert.equal(store.ownerOf(TG), "Alice");
    assert.deepEqual(store.set(TG, null), { changed: true, entry: null });
    assert.equal(store.ownerOf(TG), undefined);
  });

  test("setting the same owner again changes nothing and keeps since", () => {
    const store = newStore();
    store.set(TG, "Alice");
    clock += 60_000;
    assert.deepEqual(store.set(TG, "Alice"), {
      changed: false,
      entry: { owner: "Alice", since: "2026-12-05T10:00:00.000Z" },
    });
    assert.deepEqual(store.set(WEB, null), { changed: false, entry: null });
  });

  test("handing over to another operator restarts since", () => {
    const store = newStore();
    store.set(TG, "Alice");
    clock += 60_000;
    assert.equal(store.set(TG, "Bob").entry.since, "2026-12-05T10:01:00.000Z");
  });

  test("lookups ignore case and surrounding spaces, like the gateway's keys", () => {
    const store = newStore();
    store.set("agent:main:web-casex", "Alice");
    assert.equal(store.ownerOf(" agent:main:Web-CaseX "), "Alice");
    assert.equal(store.ownerOf(undefined), undefined);
    assert.equal(store.ownerOf(42), undefined);
  });
});

describe("sync", () => {
  test("replaces the whole set and counts the differences", () => {
    const store = newStore();
    store.set(TG, "Alice");
    store.set("agent:main:web-old", "Carol");
    clock += 60_000;
    const result = store.sync([
      { sessionKey: TG, owner: "Alice" },
      { sessionKey: WEB, owner: "Bob" },
    ]);
    assert.deepEqual(result, { added: 1, updated: 0, removed: 1, total: 2 });
    assert.deepEqual(store.list(), [
      { sessionKey: TG, owner: "Alice", since: "2026-12-05T10:00:00.000Z" },
      { sessionKey: WEB, owner: "Bob", since: "2026-12-05T10:01:00.000Z" },
    ]);
  });

  test("an owner change counts as updated", () => {
    const store = newStore();
    store.set(TG, "Alice");
    assert.deepEqual(store.sync([{ sessionKey: TG, owner: "Bob" }]), { added: 0, updated: 1, removed: 0, total: 1 });
    assert.equal(store.ownerOf(TG), "Bob");
  });

  test("a key listed twice counts once and the last owner wins", () => {
    const store = newStore();
    const result = store.sync([
      { sessionKey: TG, owner: "Alice" },
      { sessionKey: TG, owner: "Bob" },
    ]);
    assert.deepEqual(result, { added: 1, updated: 0, removed: 0, total: 1 });
    assert.equal(store.ownerOf(TG), "Bob");
  });

  test("an empty sync releases everything", () => {
    const store = newStore();
    store.set(TG, "Alice");
    assert.deepEqual(store.sync([]), { added: 0, updated: 0, removed: 1, total: 0 });
    assert.equal(store.ownerOf(TG), undefined);
  });

  test("a sync that changes nothing does not rewrite the file", () => {
    const store = newStore();
    store.set(TG, "Alice");
    const before = fs.statSync(file).ino;
    store.sync([{ sessionKey: TG, owner: "Alice" }]);
    assert.equal(fs.statSync(file).ino, before);
  });
});

describe("persistence", () => {
  test("the set survives a restart (a new store on the same file)", () => {
    newStore().set(TG, "Alice");
    const reopened = newStore();
    assert.equal(reopened.ownerOf(TG), "Alice");
    assert.deepEqual(reopened.list(), [{ sessionKey: TG, owner: "Alice", since: "2026-12-05T10:00:00.000Z" }]);
  });

  test("the file is versioned JSON, readable by people", () => {
    newStore().set(TG, "Alice");
    assert.deepEqual(JSON.parse(fs.readFileSync(file, "utf8")), {
      version: 1,
      sessions: { [TG]: { owner: "Alice", since: "2026-12-05T10:00:00.000Z" } },
    });
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ["sessions.json"]); // no temp file left behind
  });

  test("a second instance sees the other's writes", () => {
    const a = newStore();
    const b = newStore();
    assert.equal(b.ownerOf(TG), undefined);
    a.set(TG, "Alice");
    assert.equal(b.ownerOf(TG), "Alice");
    b.set(TG, null);
    assert.equal(a.ownerOf(TG), undefined);
  });

  test("an unreadable file counts as empty, is reported, and the next save repairs it", () => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, "{not json");
    const store = newStore();
    assert.equal(store.ownerOf(TG), undefined);
    assert.match(store.loadError, /cannot read/);
    store.sync([{ sessionKey: TG, owner: "Alice" }]);
    assert.equal(store.loadError, null);
    assert.equal(newStore().ownerOf(TG), "Alice");
  });

  test("a file of another version is not trusted", () => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify({ version: 2, sessions: { [TG]: { owner: "Alice" } } }));
    const store = newStore();
    assert.equal(store.ownerOf(TG), undefined);
    assert.match(store.loadError, /unsupported format/);
  });

  test("a failed save leaves the set unchanged", () => {
    fs.writeFileSync(path.join(dir, "nested"), "a file where the directory should be");
    const store = newStore();
    assert.throws(() => store.set(TG, "Alice"));
    assert.equal(store.ownerOf(TG), undefined);
  });
});

describe("params", () => {
  test("session keys are canonicalised", () => {
    assert.equal(normalizeSessionKey(" Agent:Main:Web-ABC "), "agent:main:web-abc");
  });

  for (const bad of [undefined, null, 7, "", "web-abc", "agent:main", "agent::x", "agent:main:" + "x".repeat(600)]) {
    test(`session key ${JSON.stringify(bad)?.slice(0, 30)} is refused`, () => {
      assert.throws(() => normalizeSessionKey(bad), ParamError);
    });
  }

  test("owner is a trimmed display name, or null", () => {
    assert.equal(normalizeOwner("  Alice "), "Alice");
    assert.equal(normalizeOwner(null), null);
    for (const bad of [undefined, "", "   ", 3, {}, "x".repeat(201)]) {
      assert.throws(() => normalizeOwner(bad), ParamError);
    }
  });
});
