// `loom network trace SRC DST [--port N/tcp|udp | --icmp] [--json] [--timeout MS]`: POST /loom/trace.
import type { Command } from './main.ts';
import { parseFlags, f, UsageError } from './flags.ts';
import type { TraceResult } from '../trace/tracer.ts';
import { renderTrace } from '../trace/render.ts';

const USAGE = `Usage:  loom network trace SOURCE DESTINATION [--port N/tcp|udp | --icmp] [--ipv6] [--timeout MS] [--json]

Send a real probe from SOURCE and show its path: routes, interfaces, bridges, every nftables rule it met
(in Docker's terms) and a verdict (delivered, dropped, refused, no answer, no route).

SOURCE: a container, host, or outside:IP.  DESTINATION: a container, host, an address, or HOSTIP:PORT
([IPV6]:PORT). --ipv6 traces between the containers' IPv6 addresses (networks made with --ipv6).
`;

export const traceCommand: Command = async (cli, argv) => {
  const p = parseFlags(argv, [f('--port', 'string'), f('--icmp'), f('--json'), f('--timeout', 'string'), f('--ipv6'), f('-h,--help')], { interspersed: true });
  if (p.flags.help) {
    cli.out(USAGE);
    return 0;
  }
  if (p.args.length !== 2) throw new UsageError('"network trace" requires exactly 2 arguments.');
  if (p.flags.port && p.flags.icmp) throw new UsageError('--port and --icmp cannot be used together');
  const body: Record<string, unknown> = { Source: p.args[0], Destination: p.args[1] };
  if (p.flags.port) {
    const m = /^([^/]+)(?:\/(.*))?$/.exec(p.flags.port)!;
    body.Port = /^\d+$/.test(m[1]!) ? Number(m[1]) : m[1];
    body.Protocol = m[2] ?? 'tcp';
  } else if (p.flags.icmp) body.Protocol = 'icmp';
  if (p.flags.timeout) body.TimeoutMs = Number(p.flags.timeout);
  if (p.flags.ipv6) body.IPv6 = true;
  const r = (await cli.client.request('POST', '/loom/trace', body)).body as TraceResult;
  cli.out(p.flags.json ? JSON.stringify(r, null, 2) + '\n' : renderTrace(r));
  return 0;
};
