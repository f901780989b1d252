// Structured logs to stderr (pino, synchronous destination so a crash loses nothing).
import pino from 'pino';

export interface Logger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
  child(bindings: object): Logger;
}

export function createLogger(level: string): Logger {
  return pino({ level, base: { name: 'loom' } }, pino.destination({ fd: 2, sync: true })) as unknown as Logger;
}
