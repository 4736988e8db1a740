/** The coordinator's API errors live in common (rpc/errors.ts): server, clients and the embedded path share them. */
export { CoordinatorUnavailableError, InvalidRequestError, JobStateError, UnknownJobError } from "../../../common/src/mod.js";
