/** The common package's public entry: everything coordinator, worker and CLI share. */

// errors
export { AbortedError, ConfigError, InputError, ModelError, ProtocolError, WorkerHealthError, formatLocation, isAbortedError, isConfigError, isInputError, isModelError, isWorkerHealthError } from "./errors.js";
export type { ErrorOptions, InputLocation } from "./errors.js";

// data sets
export { DEFAULT_FIELDS } from "./data/types.js";
export type { Dataset, FieldMap, LoadOptions, Sample, SkippedRecord } from "./data/types.js";
export { formatProblem, invalidRecordsError, loadDataset } from "./data/load-dataset.js";
export { detectFormat } from "./data/read-records.js";
export { validateRecord } from "./data/validate-record.js";
export type { ValidRecord } from "./data/validate-record.js";
export type { DataFormat, RawRecord } from "./data/read-records.js";
export { packPieces, sampleLengths, sampleTokens, selectSamples, tokenizeTexts } from "./data/tokenized-corpus.js";
export type { TokenizedCorpus } from "./data/tokenized-corpus.js";
export { formatSummary, prepareCorpus, summarizeCorpus } from "./data/prepare-corpus.js";
export type { CorpusSummary, PreparedCorpus } from "./data/prepare-corpus.js";
export { compactBytes, compactTokens, selectCompact, sourceOf, widenTokens } from "./data/compact-corpus.js";
export type { CompactCorpus, TokenIds } from "./data/compact-corpus.js";
export type { StringPool } from "./data/string-pool.js";
export { formatReadProgress, readCorpus } from "./data/read-corpus.js";
export type { CorpusRead, ReadCorpusOptions, ReadProgress } from "./data/read-corpus.js";
export { readRecordsAt } from "./data/record-index.js";
export type { RecordAt, RecordIndex } from "./data/record-index.js";
export { toPreparedCorpus } from "./data/prepared-adapter.js";
export { CORPUS_MAGIC, readCorpusFile, writeCorpusFile } from "./data/corpus-file.js";
export type { CorpusFile, CorpusFileInfo } from "./data/corpus-file.js";

// embeddings given with a job (--embeddings), and the matrix searches read
export { blockRows, gatherRows, matrixBytes, matrixFromFloat32 } from "./embeddings/embedding-matrix.js";
export type { EmbeddingMatrix } from "./embeddings/embedding-matrix.js";
export { readEmbeddings } from "./embeddings/read-embeddings.js";
export type { EmbeddingTarget, ReadEmbeddingsOptions } from "./embeddings/read-embeddings.js";
export { embeddingTargetOf } from "./embeddings/embedding-target.js";
export { npyHeader, parseNpyHeader } from "./embeddings/npy-format.js";
export type { NpyHeader } from "./embeddings/npy-format.js";

// prompts and tokenizer
export { DEFAULT_TEMPLATES, parseTemplate, validateTemplate } from "./prompt/template.js";
export type { PromptField, PromptTemplates, TemplateSegment } from "./prompt/template.js";
export { tokenizePrompts } from "./prompt/tokenized-prompt.js";
export type { PromptPiece, SampleField, TokenizedPrompts, TokenizedTemplate } from "./prompt/tokenized-prompt.js";
export { composeExamplePart, composeTargetPart } from "./prompt/compose.js";
export type { SampleTokens, TargetPart } from "./prompt/compose.js";
export { fixedLength, prefixLength, responseLength, targetLength } from "./prompt/lengths.js";
export type { FieldLengths } from "./prompt/lengths.js";
export { loadTokenizer, tokenizerFromJson } from "./tokenizer/text-tokenizer.js";
export type { TextTokenizer } from "./tokenizer/text-tokenizer.js";

// model bundles and onnxruntime
export { BUNDLE_FORMAT, readManifest, validateManifest } from "./bundle/manifest.js";
export type { BundleManifest } from "./bundle/manifest.js";
export { bundleFiles, exportManifest, openBundle } from "./bundle/open-bundle.js";
export { externalDataFiles } from "./bundle/external-data.js";
export { CONTEXT_LENGTH_FIELDS, readExportSettings } from "./bundle/export-config.js";
export type { ExportSettings } from "./bundle/export-config.js";
export { DECODER_FILES, findDecoderFile } from "./bundle/decoder-file.js";
export type { ModelBundle } from "./bundle/open-bundle.js";
export { checkDevice, cudaProviderStatus, onnxruntimeBinaryDir, sessionOptionsFor } from "./onnx/session-options.js";
export type { Device } from "./onnx/session-options.js";
export { ENCODER_BATCH, loadOnnxEncoder } from "./onnx/onnx-encoder.js";
export type { SentenceEncoder } from "./onnx/onnx-encoder.js";
export { nearestNeighbours } from "./onnx/knn.js";
export type { KnnOptions } from "./onnx/knn.js";

// candidate search at scale: search tiles, exact, cell probes, HNSW, the choice rule
export { KnnEngine } from "./candidates/knn-engine.js";
export type { KnnEngineOptions } from "./candidates/knn-engine.js";
export { EMPTY, emptyTopK, mergeTopK, rowIds } from "./candidates/top-k.js";
export type { TopKLists } from "./candidates/top-k.js";
export { CORPUS_BLOCK, QUERY_BLOCK, emptyLists, runSearchTile, sortedLists, sortedRow, storeLists } from "./candidates/search-tile.js";
export type { SearchLists, SearchTile } from "./candidates/search-tile.js";
export { exactSearch, planExactTiles } from "./candidates/exact-search.js";
export type { SearchOptions, SearchProgress } from "./candidates/exact-search.js";
export { DEFAULT_TARGET_RECALL, cellProbeSearch, mergeCellTile, planCellProbeTiles } from "./candidates/cell-probe.js";
export type { CellProbePlan } from "./candidates/cell-probe.js";
export type { CellProbeOptions, CellProbeResult } from "./candidates/cell-probe.js";
export { hnswSearch } from "./candidates/hnsw-search.js";
export type { HnswOptions, HnswResult } from "./candidates/hnsw-search.js";
export { recallAtK, truncateLists } from "./candidates/recall.js";
export { EXACT_MAX_MULTIPLY_ADDS, chooseSearchMethod, searchCandidates } from "./candidates/search-candidates.js";
export type { CandidateSearch, SearchMethod } from "./candidates/search-candidates.js";
export { MAX_DENSE_ENTRIES, denseSimilarityKernel, sparseSimilarityKernel } from "./candidates/similarity-kernel.js";
export type { SimilarityTable } from "./candidates/similarity-kernel.js";

// tiles
export { resolveTileWork, tileValueCount } from "./tiles/types.js";
export type { BaselineTileWork, BatchLimits, IndexedTileWork, PairTileWork, TileOutput, TileWork } from "./tiles/types.js";
export {
  chunkIndexOf,
  chunkRanges,
  CORPUS_MANIFEST_FORMAT,
  CorpusIntegrityError,
  corpusObjectName,
  decodeCorpusChunk,
  decodeCorpusManifest,
  DEFAULT_CHUNK_BYTES,
  encodeCorpusChunk,
  encodeCorpusManifest,
  isCorpusIntegrityError,
  tokenWidth,
} from "./tiles/corpus-chunks.js";
export type { ChunkEntry as CorpusChunkEntry, CorpusChunk, CorpusManifest, CorpusRef } from "./tiles/corpus-chunks.js";
export { planBatches } from "./tiles/batching.js";
export { decodeTileMessage, decodeWorkMessage, encodeTileMessage, sameMac, TILE_KEY_BYTES, tileMac, verifyTileMac } from "./tiles/codec.js";
export type { EmbedTileMessage, SearchTileMessage, TileMessage, WorkMessage } from "./tiles/codec.js";
export { parseSearchMatrixBlob, searchMatrixBlob, searchResultLists, searchResultValues } from "./candidates/search-tile-message.js";
export type { SearchTileWork } from "./candidates/search-tile-message.js";
export { embedTileId, runBatches, runSizes } from "./tiles/embed-tile.js";
export type { EmbedTileWork } from "./tiles/embed-tile.js";

// kernels
export { KERNEL_FILES, KERNEL_FORMAT, readKernel, writeKernel, writeKernelFromChunked } from "./kernel/kernel-files.js";
export { ChunkedKernelAssembler, defaultChunkColumns } from "./kernel/chunked-assembler.js";
export type { ChunkedAssemblerOptions } from "./kernel/chunked-assembler.js";
export type { KernelMetadata, UtilityKernel } from "./kernel/kernel-files.js";
export { CHUNKED_FORMAT, CHUNKED_INDEX_FILE, parseChunkedIndex } from "./kernel/chunked-format.js";
export type { ChunkEntry, ChunkedIndex } from "./kernel/chunked-format.js";
export { ChunkedKernelWriter, chunkedFileNames } from "./kernel/chunked-writer.js";
export type { ChunkedFinish, ChunkedWriterOptions } from "./kernel/chunked-writer.js";
export { ChunkedKernel, balancedRanges, isChunkedKernelDir } from "./kernel/chunked-reader.js";
export type { KernelChunk, ReadOptions } from "./kernel/chunked-reader.js";
export { readChunkedKernel, readChunkedUtilityKernel, utilityKernelToChunked, writeChunkedKernel } from "./kernel/chunked-convert.js";
export type { ChunkedExtras } from "./kernel/chunked-convert.js";

// the bus: interfaces, in-memory and NATS implementations
export type { BlobStore, KeyValueBucket, QueueObservation, QueueSettings, StoredTileMessage, TileDelivery, TileQueue, TileSource } from "./bus/types.js";
export { KvRevisionError, isKvRevisionError } from "./bus/errors.js";
export { LocalBlobStore, MemoryKeyValue, MemoryTileQueue } from "./bus/memory-bus.js";
export { NatsBlobStore, NatsKeyValue, NatsTileQueue, NatsTileSource, TILE_CONSUMER, tileStreamName } from "./bus/nats-bus.js";
export { NATS_FLAGS, NATS_OPTIONS_HELP, closeNats, natsAccessFrom, natsConnectionOptions } from "./bus/nats-options.js";
export type { NatsAccess } from "./bus/nats-options.js";
export { ACTIVE_JOBS_KEY, CLUSTER_BUCKET, COORDINATOR_KEY, HEARTBEAT_MS, JOBS_BUCKET, MODELS_BUCKET, WORKERS_BUCKET, WORKER_TTL_MS, modelBlobName, searchMatrixBlobName, statusKey, workKey } from "./cluster/names.js";
export { decodeWorkSpec, encodeWorkSpec } from "./cluster/work-spec.js";
export type { WorkSpec } from "./cluster/work-spec.js";
export { ActiveJobsRecord, CoordinatorRecord, HeartbeatRecord, JOB_ID_PATTERN, JobStatusRecord, LeaseRecord, WorkSpecSchema } from "./cluster/records.js";
export type { CoordinatorEndpointRecord, CoordinatorLease, RecordCodec, WorkerHeartbeat } from "./cluster/records.js";

// gRPC
export type { FailureAck, JobStatusMessage, PhaseProgress, ResultFileChunk, StoryLine, TileFailure, TileResultChunk, TileStarted, UploadAck, WorkerInfo, WorkerRate } from "./rpc/types.js";
export { connectCoordinator, isGrpcStatus } from "./rpc/client.js";
export type { CoordinatorClient, CoordinatorEndpoint } from "./rpc/client.js";
export { bearerMetadata, channelCredentials, serverCredentials } from "./rpc/credentials.js";
export type { GrpcTlsFiles } from "./rpc/credentials.js";
export { loadServices } from "./rpc/load-proto.js";
export {
  CoordinatorInternalError,
  CoordinatorUnavailableError,
  InvalidRequestError,
  isCoordinatorUnavailableError,
  isInvalidRequestError,
  isJobStateError,
  isUnauthenticatedError,
  isUnknownJobError,
  JobStateError,
  UnauthenticatedError,
  UnknownJobError,
} from "./rpc/errors.js";
export { clientErrorOf, errorOf, isRetryableStatus, statusOf } from "./rpc/status.js";
export type { RpcStatus } from "./rpc/status.js";

// logs
export { createLogger, errorFields, LOG_FORMATS, LOG_LEVELS, parseLogFormat, parseLogLevel, silentLogger } from "./log/log.js";
export type { LoggerOptions } from "./log/log.js";
export { formatPretty } from "./log/pretty.js";
export type { LogFields, LogFn, LogFormat, Logger, LogLevel } from "./log/types.js";

// utilities
export { sha256File, sha256Hex } from "./util/hash.js";
export { percentiles } from "./util/percentiles.js";
export { assertReplaceable, writeOutputDir } from "./util/output-dir.js";

// selection (its own public entry)
export * from "./selection/mod.js";

// metrics (its own public entry)
export * from "./metrics/mod.js";
