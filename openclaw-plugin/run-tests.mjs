// `node --test openclaw-plugin/` does not search this folder: Node 22+ treats
// each argument as a file or glob, so it runs the folder as one module, i.e.
// package.json "main", which is this file. Load every test so that command
// runs them all. (The gateway loads the plugin from "openclaw.extensions".)
import fs from "node:fs";

const dir = new URL("./test/", import.meta.url);
for (const name of fs.readdirSync(dir).filter((n) => n.endsWith(".test.mjs")).sort()) {
  await import(new URL(name, dir));
}
