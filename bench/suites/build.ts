// 8. build (issue 11's goal: a 10-step Dockerfile, cold and fully cached, in <= 0.5x dockerd's classic
// builder): the same context built through the docker CLI with DOCKER_BUILDKIT=0 against loom and against
// dockerd 20.10, and through bin/loom.
import fs from 'node:fs';
import path from 'node:path';
import { goal, peer, row, type Row, type SuiteResult } from '../lib/report.ts';
import { run as runCmd } from '../lib/proc.ts';
import { LOOM, World, type Ctx, type Daemon } from '../lib/world.ts';
import { available } from '../lib/peers.ts';

export const name = 'build';
export const title = 'docker build (classic builder) of a 10-step Dockerfile, cold (--no-cache) and fully cached';

const DOCKERFILE = [
  'FROM box',
  'ARG VERSION=1',
  'ENV APP=/srv/app MODE=bench',
  'WORKDIR /srv/app',
  'COPY conf/ conf/',
  'COPY app.sh bin/',
  'RUN echo "v=$VERSION" > version && mkdir -p data',
  'RUN sh bin/app.sh > out.txt',
  'LABEL org.example.bench=1',
  'EXPOSE 8080',
  'CMD ["sh", "bin/app.sh"]',
].join('\n');

interface Client { system: string; loom?: boolean; argv: string[]; d: Daemon }

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.ceil(xs.length / 2) - 1]!;

export async function run(ctx: Ctx, res: SuiteResult): Promise<void> {
  const K = ctx.quick ? 3 : 10;
  const rows: Row[] = [];
  const clients: Client[] = [];
  const lw = await World.create(ctx, 'buildloom');
  const loom = await lw.startLoom();
  await lw.importBox(loom);
  clients.push({ system: 'loom (docker CLI)', argv: ['docker'], d: loom });
  clients.push({ system: 'loom (bin/loom)', loom: true, argv: [LOOM], d: loom });
  if (available().dockerd) {
    await peer(res, 'docker', async () => {
      const dw = await World.create(ctx, 'builddocker');
      const docker = await dw.startDocker();
      await dw.importBox(docker);
      clients.push({ system: 'docker (dockerd 20.10)', argv: ['docker'], d: docker });
    });
  } else res.notes.push('dockerd not installed: docker not measured');

  const dir = path.join(lw.dir, 'context');
  fs.mkdirSync(path.join(dir, 'conf'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'Dockerfile'), DOCKERFILE);
  fs.writeFileSync(path.join(dir, 'app.sh'), 'echo "$MODE $(cat version)"\n');
  for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(dir, 'conf', `c${i}.conf`), `key${i}=value\n`.repeat(50));

  const medians: Record<string, { cold?: number; cached?: number }> = {};
  for (const c of clients) await peer(res, c.system, async () => {
    ctx.log(`  ${c.system}: ${K} × build --no-cache, ${K} × cached build`);
    const env = { ...c.d.env, DOCKER_BUILDKIT: '0' };
    const build = async (args: string[]) => {
      const r = await runCmd([...c.argv, 'build', '-q', ...args, dir], { env });
      if (r.code !== 0) throw new Error(`${c.system}: build → exit ${r.code}: ${r.stderr.trim().slice(0, 500)}`);
      return r.ms;
    };
    await build(['-t', 'bench:warm']); // fills the cache; the first build pays one-off costs
    const cold: number[] = [];
    const cached: number[] = [];
    for (let i = 0; i < K; i++) {
      cold.push(await build(['--no-cache']));
      cached.push(await build([]));
    }
    rows.push(row('build, cold (--no-cache)', c.system, 'ms', cold, { loom: c.loom }));
    rows.push(row('build, fully cached', c.system, 'ms', cached, { loom: c.loom }));
    medians[c.system] = { cold: med(cold), cached: med(cached) };
  });
  const l = medians['loom (docker CLI)'];
  const d = medians['docker (dockerd 20.10)'];
  for (const k of ['cold', 'cached'] as const) {
    const ratio = l?.[k] !== undefined && d?.[k] ? l[k]! / d[k]! : undefined;
    res.goals.push(goal(`build ${k}, loom/dockerd through the docker CLI (issue 11)`, '<= 0.5', ratio, 'count', (v) => v <= 0.5));
  }
  res.tables.push({
    title: `docker build -q of a 10-step Dockerfile (2 RUN, 2 COPY of 21 files, 6 metadata steps), ${K} builds each`,
    rows,
    notes: [
      'Each figure is the whole CLI invocation, context upload included; the docker CLI runs with DOCKER_BUILDKIT=0 against both daemons.',
      'A cold build runs both RUN steps in containers (runc) and commits every step; a cached build answers every step from the build cache.',
    ],
  });
}
