// Exec: create, start (hijacked stream), inspect, resize.
import os from 'node:os';
import type net from 'node:net';
import { route, STREAMED, json, noContent } from '../router.ts';
import { frame, hijack } from '../router.ts';
import { LoomError } from '../../util/errors.ts';
import { ExecFailureSniffer } from '../../runtime/execfail.ts';
import { windowSize } from './containers.ts';
import { validateBody } from '../schemas.ts';
import { checkExecConfig } from '../configcheck.ts';
route('POST', '/containers/{id}/exec', async (d, { params, body, res }) => {
  const b = validateBody('execCreate', await body());
  checkExecConfig(b);
  const id = d.containers.execCreate(params.id!, b);
  json(res, 201, { Id: id });
  return STREAMED;
});

route('POST', '/exec/{id}/start', async (d, ctx) => {
  const ex = d.containers.getExec(ctx.params.id!);
  const b = validateBody('execStart', await ctx.body());
  if (ex.ExitCode !== null) throw new LoomError(409, `exec command ${ex.ID} has already run`);
  if (ex.Running) throw new LoomError(409, `exec command ${ex.ID} is already running`);
  const c = d.containers.get(ex.containerId);
  if (!c.state.Running) throw new LoomError(409, `container ${c.id} is not running`);
  const tty = b.Tty ?? ex.Tty;
  const child = d.containers.runc.exec(c.id, { args: ex.Cmd, env: ex.Env.filter((e) => e.includes('=')), cwd: ex.WorkingDir || undefined, user: ex.User || undefined, tty, stdin: ex.AttachStdin, detach: !!b.Detach });
  ex.Running = true;
  ex.Pid = child.pid ?? 0;
  let sock: net.Socket | undefined;
  const out = (stream: 1 | 2, chunk: Buffer) => { if (sock && !sock.destroyed) sock.write(tty ? chunk : frame(stream, chunk)); };
  // runc's own "exec failed: ..." becomes Docker's message on stdout and exit code (126/127)
  const sniff = new ExecFailureSniffer((chunk) => out(tty ? 1 : 2, chunk));
  const finished = new Promise<void>((resolve) => {
    child.on('close', (code: number | null, signal: NodeJS.Signals | null) => {
      ex.Running = false;
      ex.ExitCode = code ?? (signal ? 128 + (os.constants.signals[signal as keyof typeof os.constants.signals] ?? 0) : 255);
      const failed = sniff.finish(ex.ExitCode);
      if (failed) {
        ex.ExitCode = failed.exitCode;
        out(1, Buffer.from(`${failed.message}\r\n`));
      }
      d.events.publish('container', 'exec_die', c.id, { name: c.name, execID: ex.ID, exitCode: String(ex.ExitCode) });
      resolve();
    });
    child.on('error', () => {
      ex.Running = false;
      ex.ExitCode = 126;
      resolve();
    });
  });
  d.events.publish('container', `exec_start: ${ex.Cmd.join(' ')}`, c.id, { name: c.name, execID: ex.ID });
  if (b.Detach) {
    child.stdout?.resume();
    child.stderr?.resume();
    noContent(ctx.res, 200);
    return STREAMED;
  }
  sock = hijack(ctx, tty);
  child.stdout?.on('data', (chunk: Buffer) => (tty ? sniff.feed(chunk) : out(1, chunk)));
  child.stderr?.on('data', (chunk: Buffer) => sniff.feed(chunk));
  if (ex.AttachStdin && child.stdin) {
    sock.pipe(child.stdin);
    child.stdin.on('error', () => {});
  } else child.stdin?.end();
  sock.on('error', () => {});
  await finished;
  sock.end();
  return STREAMED;
});

route('GET', '/exec/{id}/json', (d, { params }) => {
  const ex = d.containers.getExec(params.id!);
  return {
    ID: ex.ID, Running: ex.Running, ExitCode: ex.ExitCode, ProcessConfig: { tty: ex.Tty, entrypoint: ex.Cmd[0], arguments: ex.Cmd.slice(1), privileged: ex.Privileged, user: ex.User },
    OpenStdin: ex.AttachStdin, OpenStderr: ex.AttachStderr, OpenStdout: ex.AttachStdout, CanRemove: false, ContainerID: ex.containerId, DetachKeys: '', Pid: ex.Pid,
  };
});

route('POST', '/exec/{id}/resize', async (d, { params, query, res }) => {
  const { rows, cols } = windowSize(query);
  await d.containers.resizeExec(params.id!, rows, cols);
  noContent(res, 200);
  return STREAMED;
});
