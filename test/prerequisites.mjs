// Run by `npm test` before anything else (the "pretest" script; plain JavaScript, so it needs no
// build): the integration tests start real nats-server processes, and without one on the PATH
// they would fail one by one with spawn ENOENT. One line naming what is missing, and exit 1.
import { spawnSync } from "node:child_process";

const MIN = [2, 9];
const INSTALL = "`sudo apt-get install -y nats-server` (macOS: `brew install nats-server`; elsewhere: https://github.com/nats-io/nats-server/releases)";

const probe = spawnSync("nats-server", ["--version"], { encoding: "utf8" });
if (probe.error || probe.status !== 0) {
  process.stderr.write(`delift: npm test needs nats-server ${MIN.join(".")}+ on the PATH (the integration tests start real servers): install it with ${INSTALL}\n`);
  process.exit(1);
}
const found = /v?(\d+)\.(\d+)\.(\d+)/.exec(probe.stdout + probe.stderr);
if (!found || Number(found[1]) < MIN[0] || (Number(found[1]) === MIN[0] && Number(found[2]) < MIN[1])) {
  process.stderr.write(`delift: npm test needs nats-server ${MIN.join(".")}+, found "${(probe.stdout + probe.stderr).trim()}": upgrade it with ${INSTALL}\n`);
  process.exit(1);
}
