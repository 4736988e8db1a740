/**
 * How the coordinator reaches shard hosts. Two implementations: in this process (the embedded
 * default, and tests) and over NATS (nats-transport.ts). The selection itself only sees this
 * interface, so both run the same code.
 */
import { AbortedError, ConfigError } from "../../errors.js";
import { ChunkedKernel } from "../../kernel/chunked-reader.js";
import type { CscKernel } from "../types.js";
import { HostLostError } from "./errors.js";
import { decodeReply, decodeRequest, encodeReply, encodeRequest } from "./messages.js";
import { ShardHost, type ColumnReader } from "./shard-host.js";
import type { HostReply, HostRequest, KernelSourceSpec } from "./types.js";

export interface ShardTransport {
  /** Hosts that are alive now, sorted by id (waits for at least one). */
  hosts(signal?: AbortSignal): Promise<string[]>;
  /** One request to one host. A host that is gone rejects with HostLostError. */
  request(host: string, request: HostRequest, signal?: AbortSignal): Promise<HostReply>;
  /** Payload bytes so far, both ways (0 in process). */
  traffic(): { sent: number; received: number };
}

export type InProcessOptions = {
  /** Kernels the hosts may read by key ({ kind: "memory", key }); their values must already be scaled. */
  memory?: Map<string, CscKernel>;
  /**
   * The in-memory kernels are handed over: shards may reorder their entries (dropping entries
   * coverage has passed, a large saving late in a selection), which leaves them unusable after.
   */
  handOver?: boolean;
  /** Pass every message through the wire codec (validation and byte counts, as over NATS). */
  codec?: boolean;
  log?: (line: string) => void;
};

/** Shard hosts as objects in this process. */
export class InProcessTransport implements ShardTransport {
  private readonly hostMap = new Map<string, ShardHost>();
  private readonly lost = new Set<string>();
  private sent = 0;
  private received = 0;

  constructor(
    hostCount: number,
    private readonly options: InProcessOptions = {},
  ) {
    const memory = options.memory ?? new Map<string, CscKernel>();
    const readColumns: ColumnReader = async (source: KernelSourceSpec, a: number, b: number) => {
      if (source.kind === "memory") {
        const kernel = memory.get(source.key);
        if (!kernel) throw new ConfigError(`no in-memory kernel "${source.key}"`);
        return { kernel: columnView(kernel, a, b), owned: options.handOver === true };
      }
      return defaultReader(source, a, b);
    };
    for (let h = 0; h < hostCount; h++) {
      const id = `local-${h}`;
      this.hostMap.set(id, new ShardHost(id, { readColumns, log: options.log }));
    }
  }

  async hosts(): Promise<string[]> {
    return [...this.hostMap.keys()].filter((h) => !this.lost.has(h)).sort();
  }

  async request(host: string, request: HostRequest, signal?: AbortSignal): Promise<HostReply> {
    if (signal?.aborted) throw new AbortedError();
    const target = this.hostMap.get(host);
    if (!target || this.lost.has(host)) throw new HostLostError(host, `host ${host} is gone`);
    if (!this.options.codec) return target.handle(request);
    const bytes = encodeRequest(request);
    this.sent += bytes.byteLength;
    const reply = encodeReply(await target.handle(decodeRequest(bytes, { local: true })));
    this.received += reply.byteLength;
    return decodeReply(reply);
  }

  traffic(): { sent: number; received: number } {
    return { sent: this.sent, received: this.received };
  }

  /** Makes a host unreachable from now on, as if its process had died (tests). */
  loseHost(host: string): void {
    this.lost.add(host);
  }

  /** The host objects (tests look at what they hold). */
  host(id: string): ShardHost | undefined {
    return this.hostMap.get(id);
  }
}

/** Chunked directories from the local file system. */
const defaultReader: ColumnReader = async (source, a, b) => {
  if (source.kind !== "chunked-dir") throw new ConfigError(`cannot read a "${source.kind}" kernel source`);
  return { kernel: await (await ChunkedKernel.open(source.path)).readColumns(a, b), owned: true };
};

/** Columns [a, b) of an in-memory kernel: views of its entries, offsets rebased (a small copy). */
export function columnView(kernel: CscKernel, a: number, b: number): CscKernel {
  const from = kernel.colPtr[a];
  const to = kernel.colPtr[b];
  return {
    nRows: kernel.nRows,
    nCols: b - a,
    colPtr: Uint32Array.from(kernel.colPtr.subarray(a, b + 1), (v) => v - from),
    rowIdx: kernel.rowIdx.subarray(from, to),
    values: kernel.values.subarray(from, to),
  };
}
