/** The job is not known to this coordinator (never submitted, or from another cluster). */
export class UnknownJobError extends Error {
  constructor(jobId: string) {
    super(`unknown job ${jobId}`);
    this.name = "UnknownJobError";
  }
}

/** The job cannot take this request yet (still planning after a restart): try again shortly. */
export class JobNotReadyError extends Error {
  constructor(jobId: string) {
    super(`job ${jobId} is still planning`);
    this.name = "JobNotReadyError";
  }
}
