// 6. data path (issue 5's goal: >= 0.95x raw): iperf3 TCP container to container on one bridge, from the
// host's 127.0.0.1 to a published port, from the outside world to a published port on the host's address,
// each relative to raw veth + bridge without any rule (host → container address directly; outside world
// → container address, routed by the host).
import { goal, peer, row, type Row, type SuiteResult } from '../lib/report.ts';
import { must } from '../lib/proc.ts';
import { World, type Ctx, type Daemon } from '../lib/world.ts';
import { available } from '../lib/peers.ts';
import { iperfRun, iperfServer } from '../lib/iperf.ts';
import { netavarkUp } from './ports.ts';

export const name = 'datapath';
export const title = 'data path: iperf3 TCP throughput container↔container, host 127.0.0.1 → published port, outside world → published port';

const C2C = 'container → container (same bridge)';
const HOST = 'host → container (raw: its address; others: 127.0.0.1 → published port)';
const EXT = 'outside world → container (raw: routed; others: host address → published port)';
const PORT = 5201;

interface Paths { system: string; loom?: boolean; w: World; server: string; serverIp: string; client: string }

/** The raw reference: a bridge and two namespaces wired by hand, no nftables/iptables rule anywhere. */
async function rawWorld(ctx: Ctx): Promise<Paths> {
  const w = await World.create(ctx, 'dpraw');
  const s = `${w.ctrPrefix}s`, c = `${w.ctrPrefix}c`;
  const cmds = [
    ['netns', 'add', s], ['netns', 'add', c],
    ['-n', w.hostNs, 'link', 'add', 'br0', 'type', 'bridge'], ['-n', w.hostNs, 'addr', 'add', '10.77.0.1/24', 'dev', 'br0'], ['-n', w.hostNs, 'link', 'set', 'br0', 'up'],
    ['-n', w.hostNs, 'link', 'add', 'vs', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', s], ['-n', w.hostNs, 'link', 'set', 'vs', 'master', 'br0', 'up'],
    ['-n', w.hostNs, 'link', 'add', 'vc', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', c], ['-n', w.hostNs, 'link', 'set', 'vc', 'master', 'br0', 'up'],
    ['-n', s, 'addr', 'add', '10.77.0.2/24', 'dev', 'eth0'], ['-n', s, 'link', 'set', 'eth0', 'up'], ['-n', s, 'link', 'set', 'lo', 'up'], ['-n', s, 'route', 'add', 'default', 'via', '10.77.0.1'],
    ['-n', c, 'addr', 'add', '10.77.0.3/24', 'dev', 'eth0'], ['-n', c, 'link', 'set', 'eth0', 'up'], ['-n', c, 'link', 'set', 'lo', 'up'], ['-n', c, 'route', 'add', 'default', 'via', '10.77.0.1'],
    ['-n', w.extNs, 'route', 'add', '10.77.0.0/24', 'via', '198.51.100.1'],
  ];
  for (const a of cmds) await must(['ip', ...a]);
  await w.host(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  return { system: 'raw veth + bridge, no rules', w, server: `/run/netns/${s}`, serverIp: '10.77.0.2', client: `/run/netns/${c}` };
}

async function daemonWorld(ctx: Ctx, kind: 'loom' | 'docker'): Promise<Paths> {
  const w = await World.create(ctx, `dp${kind}`);
  const d: Daemon = kind === 'loom' ? await w.startLoom() : await w.startDocker();
  await w.importBox(d);
  const srv = await d.api.run({ Image: 'box', Cmd: ['sleep', '600'], ExposedPorts: { [`${PORT}/tcp`]: {} }, HostConfig: { PortBindings: { [`${PORT}/tcp`]: [{ HostIp: '', HostPort: String(PORT) }] } } }, 'srv');
  const cli = await d.api.run({ Image: 'box', Cmd: ['sleep', '600'] }, 'cli');
  const ip = (await d.api.ok<{ NetworkSettings: { IPAddress: string } }>('GET', `/containers/${srv}/json`)).NetworkSettings.IPAddress;
  return {
    system: kind === 'loom' ? 'loom' : 'docker (dockerd 20.10, docker-proxy for 127.0.0.1)', loom: kind === 'loom', w,
    server: await w.containerNetns(d, srv), serverIp: ip, client: await w.containerNetns(d, cli),
  };
}

async function netavarkWorld(ctx: Ctx): Promise<Paths> {
  const w = await World.create(ctx, 'dpnetavark');
  const server = await netavarkUp(w, 0, { dns: false, port: true, portBase: PORT, containerPort: PORT });
  const client = await netavarkUp(w, 1, { dns: false, port: false });
  return { system: 'netavark (iptables)', w, server, serverIp: '10.88.0.2', client };
}

export async function run(ctx: Ctx, res: SuiteResult): Promise<void> {
  const have = available();
  if (!have.iperf3) {
    res.notes.push('iperf3 not installed: nothing measured');
    return;
  }
  const secs = ctx.quick ? 1 : 2, reps = ctx.quick ? 2 : 3;
  const builders: [string, () => Promise<Paths>][] = [['raw', () => rawWorld(ctx)], ['loom', () => daemonWorld(ctx, 'loom')]];
  if (have.dockerd) builders.push(['docker', () => daemonWorld(ctx, 'docker')]);
  else res.notes.push('dockerd not installed: docker not measured');
  if (have.netavark) builders.push(['netavark', () => netavarkWorld(ctx)]);
  const rows: Row[] = [];
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.ceil(xs.length / 2) - 1]!;
  // All worlds first, then the runs interleaved (each round measures every system once per path), so a
  // change in the machine's load during the benchmark spreads over all systems instead of favouring one.
  const systems: { label: string; p: Paths }[] = [];
  try {
    for (const [label, build] of builders) {
      const p = await peer(res, label, build);
      if (!p) continue;
      iperfServer(p.w, p.server, PORT);
      systems.push({ label, p });
    }
    ctx.log(`  ${systems.map((x) => x.label).join(', ')}: 3 paths × ${reps} × ${secs} s, interleaved`);
    const got = new Map<string, number[]>();
    for (let r = 0; r < reps; r++) {
      for (const c of [C2C, HOST, EXT]) {
        for (const { label, p } of systems) {
          const [from, to] = c === C2C ? [p.client, p.serverIp] : c === HOST ? [p.w.hostPath, label === 'raw' ? p.serverIp : '127.0.0.1'] : [p.w.extPath, label === 'raw' ? p.serverIp : '198.51.100.1'];
          const x = await peer(res, `${label} ${c}`, () => iperfRun(p.w, from, to, PORT, secs));
          if (x !== undefined) got.set(`${label}|${c}`, [...(got.get(`${label}|${c}`) ?? []), x]);
        }
      }
    }
    for (const c of [C2C, HOST, EXT]) {
      const raw = got.get(`raw|${c}`);
      for (const { label, p } of systems) {
        const xs = got.get(`${label}|${c}`);
        if (!xs) continue;
        rows.push(row(c, p.system, 'Gbit/s', xs, { loom: p.loom, extra: raw ? { 'vs raw': med(xs) / med(raw) } : {} }));
      }
    }
  } finally {
    for (const { p } of systems) await p.w.cleanup();
  }
  const cases = [C2C, HOST, EXT];
  res.tables.push({
    title: `iperf3 TCP, ${reps} × ${secs} s per figure, the systems interleaved (one stream; client and server share the machine's cores)`,
    rows: rows.sort((a, b) => cases.indexOf(a.case) - cases.indexOf(b.case)),
    columns: ['vs raw'], plain: ['vs raw'],
    notes: ['iperf3 runs in the containers\' network namespaces (nsenter --net), with the host\'s binary.'],
  });
  for (const c of cases) {
    const l = rows.find((r) => r.loom && r.case === c);
    res.goals.push(goal(`throughput ${c.split(' (')[0]} vs raw (issue ${c === HOST ? '3, 5' : '5'})`, '>= 0.95', l?.extra?.['vs raw'] as number | undefined, 'count', (v) => v >= 0.95));
  }
}
