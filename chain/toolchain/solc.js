#!/usr/bin/env node
// A `solc` executable over the npm `solc` package (solcjs), so that py-solc-x, eth-brownie
// and anything else that drives a native solc through standard JSON works offline.
//
// Answers:  --version                          -> "Version: X.Y.Z+commit.H..." like native solc
//           --standard-json [--base-path P] [--allow-paths A,B] [--include-path P]...
//                                               -> JSON on stdin, JSON on stdout (nothing else)
// Imports resolve against the base path, include paths, the allowed paths and the project's
// node_modules (so "@openzeppelin/contracts/..." works without remappings).
"use strict";
const fs = require("fs");
const path = require("path");

const nodeModules = process.env.LORALEDGER_NODE_MODULES || path.resolve(__dirname, "..", "..", "node_modules");
const solc = require(path.join(nodeModules, "solc"));

const args = process.argv.slice(2);
if (args.includes("--version")) {
  process.stdout.write("solc, the solidity compiler commandline interface\nVersion: " + solc.version() + "\n");
  process.exit(0);
}
if (!args.includes("--standard-json")) {
  process.stderr.write("this solc wrapper supports only --version and --standard-json\n");
  process.exit(2);
}

const roots = [];
function takeList(flag) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === flag && i + 1 < args.length) {
      for (const p of args[i + 1].split(",")) if (p) roots.push(path.resolve(p));
    } else if (args[i].startsWith(flag + "=")) {
      for (const p of args[i].slice(flag.length + 1).split(",")) if (p) roots.push(path.resolve(p));
    }
  }
}
takeList("--base-path");
takeList("--include-path");
takeList("--allow-paths");
roots.push(process.cwd(), nodeModules);

function findImports(importPath) {
  const candidates = path.isAbsolute(importPath) ? [importPath] : roots.map((r) => path.join(r, importPath));
  for (const candidate of candidates) {
    try {
      return { contents: fs.readFileSync(candidate, "utf8") };
    } catch (_) {
      // try the next root
    }
  }
  return { error: "File not found: " + importPath + " (searched " + roots.join(", ") + ")" };
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  process.stdout.write(solc.compile(input, { import: findImports }));
});
