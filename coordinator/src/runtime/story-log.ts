import { mkdir, open, readFile, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { parseStory, type StoryEntry } from "../jobs/story.js";

/**
 * A job's story on disk: story.jsonl, appended in order. Appends are queued and written in the
 * background; sync() waits for them and fsyncs (on every job state change and at close), so what
 * a restart reads back is what the machine did.
 */
export class StoryLog {
  private handle: Promise<FileHandle> | null = null;
  private queue: string[] = [];
  private writing: Promise<void> = Promise.resolve();
  private failed: Error | null = null;

  constructor(readonly path: string) {}

  append(entries: StoryEntry[]): void {
    if (entries.length === 0) return;
    for (const e of entries) this.queue.push(JSON.stringify(e) + "\n");
    this.writing = this.writing.then(() => this.drain());
  }

  /** Everything appended so far is on disk. */
  async sync(): Promise<void> {
    this.writing = this.writing.then(async () => {
      await this.drain();
      if (this.handle) await (await this.handle).sync().catch(() => undefined);
    });
    await this.writing;
    if (this.failed) throw this.failed;
  }

  /** Writes what is queued, fsyncs and closes the file (a later append opens it again). */
  async close(): Promise<void> {
    this.writing = this.writing.then(async () => {
      await this.drain();
      const handle = this.handle;
      this.handle = null;
      if (handle) {
        const h = await handle.catch(() => null);
        await h?.sync().catch(() => undefined);
        await h?.close().catch(() => undefined);
      }
    });
    await this.writing;
  }

  private async drain(): Promise<void> {
    if (this.queue.length === 0) return;
    const text = this.queue.join("");
    this.queue = [];
    try {
      this.handle ??= mkdir(dirname(this.path), { recursive: true }).then(() => open(this.path, "a"));
      await (await this.handle).appendFile(text);
    } catch (err) {
      this.failed = err as Error;
    }
  }
}

/** Reads a job's story (a torn last line is skipped). */
export async function readStory(path: string): Promise<StoryEntry[]> {
  return parseStory(await readFile(path, "utf8"), path);
}
