/**
 * Public entry of distributed selection: the shard layout, the coordinator's run, shard hosts,
 * and the transports (in process; NATS in nats-transport.ts).
 */
export type {
  DistributedAlgorithm,
  DistributedHooks,
  DistributedObjective,
  DistributedReport,
  DistributedResult,
  DistributedSettings,
  HostReply,
  HostRequest,
  KernelSourceSpec,
  RoundInfo,
  ShardRange,
  ShardScaling,
} from "./types.js";
export type { DistributedPlan } from "./run-distributed.js";
export type { ColumnBlock, ShardLayout } from "./layout.js";
export type { ShardTransport, InProcessOptions } from "./transport.js";
export type { ColumnReader, ShardHostOptions } from "./shard-host.js";

export { runDistributedSelection } from "./run-distributed.js";
export { distributedObjective } from "./objective.js";
export { DEFAULT_SELECT_MEMORY, centralSelectionBytes, chooseSelection } from "./choose.js";
export type { ChoiceInput, SelectionChoice } from "./choose.js";
export { DEFAULT_PARTS, memoryBlocks, partQuotas, shardLayout } from "./layout.js";
export { InProcessTransport, columnView } from "./transport.js";
export { ShardHost } from "./shard-host.js";
export { decodeReply, decodeRequest, encodeReply, encodeRequest } from "./messages.js";
export { HostLostError, NoShardHostsError, ShardFailedError, ShardNotLoadedError, isHostLostError } from "./errors.js";
export { HmacAuthenticator, UNSIGNED } from "./auth.js";
export type { MessageAuthenticator, MessageDirection } from "./auth.js";
export { NatsShardTransport } from "./nats-transport.js";
export type { NatsTransportOptions } from "./nats-transport.js";
export { serveShardHost } from "./nats-shard-host.js";
export type { NatsShardHostOptions, ServedShardHost } from "./nats-shard-host.js";
export { blobColumnReader, publishChunkedKernel } from "./blob-source.js";
