// Errors that cross the API boundary carry the HTTP status Docker uses for them.
// The message is what Docker would print (the CLI shows it after "Error response from daemon: ").

export class LoomError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
    this.name = 'LoomError';
  }
}

/** 400: the request itself is wrong (bad flag value, malformed CIDR, ...). Name the bad value. */
export const invalidParameter = (msg: string) => new LoomError(400, msg);
/** 404: no such container / image / network / exec. */
export const notFound = (msg: string) => new LoomError(404, msg);
/** 409: conflicts with existing state (name in use, port taken, container not running, ...). */
export const conflict = (msg: string) => new LoomError(409, msg);
/** 500: the system failed (kernel refused, runc failed). */
export const systemError = (msg: string) => new LoomError(500, msg);
/** 304: already in that state (start of a running container, stop of a stopped one). */
export const notModified = (msg: string) => new LoomError(304, msg);

export function statusOf(err: unknown): number {
  return err instanceof LoomError ? err.status : 500;
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
