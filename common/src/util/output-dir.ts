import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { randomUUID } from "node:crypto";
import { ConfigError } from "../errors.js";

/**
 * Fills a fresh temporary sibling of `dir` and renames it into place only when every file is
 * written, so an interrupted run (Ctrl-C, a crash, an error) never leaves half-written output.
 * An existing `dir` is replaced only if it holds nothing but files this writer owns, so a
 * mistyped --out never deletes a user's directory.
 */
export async function writeOutputDir(dir: string, ownedNames: string[], fill: (tmp: string) => Promise<void>): Promise<void> {
  const target = resolve(dir);
  await assertReplaceable(target, ownedNames);
  await mkdir(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.tmp-${randomUUID().slice(0, 8)}`);
  await mkdir(tmp);
  try {
    await fill(tmp);
    const old = join(dirname(target), `.${basename(target)}.old-${randomUUID().slice(0, 8)}`);
    const exists = await stat(target).then(() => true, () => false);
    if (exists) await rename(target, old);
    await rename(tmp, target);
    if (exists) await rm(old, { recursive: true, force: true });
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Fails early (ConfigError) when `dir` exists and holds files the writer does not own. */
export async function assertReplaceable(dir: string, ownedNames: string[]): Promise<void> {
  let entries: string[];
  try {
    const s = await stat(dir);
    if (!s.isDirectory()) throw new ConfigError(`--out ${dir} exists and is not a directory`);
    entries = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  const foreign = entries.filter((e) => !ownedNames.includes(e));
  if (foreign.length > 0) {
    throw new ConfigError(
      `--out ${dir} already holds files delift did not write (${foreign.slice(0, 3).join(", ")}${foreign.length > 3 ? ", ..." : ""}); choose a new or empty directory`,
    );
  }
}
