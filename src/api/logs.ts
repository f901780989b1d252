// Container output lives in two files written by the runtime's shim (stdout, stderr). `logs` reads them;
// `logs -f` and `attach` follow them until the container's process ends.
import fs from 'node:fs';
import type net from 'node:net';
import type { Daemon } from '../daemon.ts';

export interface LogFiles {
  stdout?: string;
  stderr?: string;
  tail?: number;
}
export type Offsets = { stdout: number; stderr: number };
type Write = (stream: 1 | 2, data: Buffer) => void;

function readFrom(path: string | undefined, offset: number): Buffer {
  if (!path) return Buffer.alloc(0);
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size <= offset) return Buffer.alloc(0);
    const buf = Buffer.alloc(size - offset);
    const n = fs.readSync(fd, buf, 0, buf.length, offset);
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

function tailLines(b: Buffer, n: number): Buffer {
  if (n < 0) return b;
  if (n === 0) return Buffer.alloc(0);
  let end = b.length;
  if (end > 0 && b[end - 1] === 10) end--;
  let count = 0;
  for (let i = end - 1; i >= 0; i--) {
    if (b[i] === 10 && ++count === n) return b.subarray(i + 1);
  }
  return b;
}

/** Writes what the files hold now; returns the offsets reached. */
export function readLogs(files: LogFiles, write: Write): Offsets {
  const out = readFrom(files.stdout, 0);
  const err = readFrom(files.stderr, 0);
  const o = files.tail !== undefined ? tailLines(out, files.tail) : out;
  const e = files.tail !== undefined ? tailLines(err, files.tail) : err;
  if (o.length) write(1, o);
  if (e.length) write(2, e);
  return { stdout: out.length, stderr: err.length };
}

/** Streams growth of the files until the container's process ends (then drains) or the client goes away.
 *  An attach (`attach` true) to a container that is not running yet waits for it to start and end: that is
 *  how `run` and `start -a` attach first and start second. */
export function followLogs(d: Daemon, id: string, files: LogFiles, offsets: Offsets, write: Write, sock: net.Socket, attach = false): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const pump = () => {
      const o = readFrom(files.stdout, offsets.stdout);
      if (o.length) { offsets.stdout += o.length; write(1, o); }
      const e = readFrom(files.stderr, offsets.stderr);
      if (e.length) { offsets.stderr += e.length; write(2, e); }
    };
    const finish = () => {
      if (done) return;
      done = true;
      clearInterval(timer);
      off();
      pump();
      resolve();
    };
    const timer = setInterval(pump, 25);
    const off = d.containers.onProcessExit(id, finish);
    sock.on('close', finish);
    const c = d.containers.find(id);
    if (!c || (!c.state.Running && !attach)) finish();
  });
}
