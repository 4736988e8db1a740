import { ModelError, WorkerHealthError } from "../../../common/src/mod.js";

/**
 * onnxruntime reports every failure as a plain Error with a message; this is the one place that
 * reads those messages, to turn them into delift's classes: memory and provider-library failures
 * are this worker's (WorkerHealthError), everything else at load time is the bundle's (ModelError).
 */
const RESOURCE = /bad_alloc|failed to allocate|out of memory|cudaErrorMemoryAllocation|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED|not enough memory|Cannot allocate memory/i;
const PROVIDER = /libonnxruntime_providers_|libcudnn|libcublas|libcudart|CUDA driver version|no CUDA-capable device|cudaErrorNoDevice|cudaErrorInsufficientDriver|Failed to load library/i;

export function isResourceFailure(err: unknown): boolean {
  return RESOURCE.test((err as Error)?.message ?? "");
}

/** A session-creation or trial-run failure, as the class its cause deserves. */
export function classifyLoadError(err: unknown, what: string, hint = ""): Error {
  const message = (err as Error)?.message ?? String(err);
  if (RESOURCE.test(message)) return new WorkerHealthError(`${what}: not enough memory on this worker: ${message}`, { cause: err });
  if (PROVIDER.test(message)) return new WorkerHealthError(`${what}: this worker's execution provider cannot start: ${message}`, { cause: err });
  return new ModelError(`${what}: ${message}${hint}`, { cause: err });
}

/** A failure while computing a tile: out of memory is the worker's; anything else stays the tile's. */
export function classifyRunError(err: unknown): unknown {
  if (isResourceFailure(err)) return new WorkerHealthError(`onnxruntime ran out of memory on this worker: ${(err as Error).message}`, { cause: err });
  return err;
}
