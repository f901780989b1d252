// A plan as commands: apart from explain.ts so that the CLI prints one without loading the daemon's modules.
import type { Plan } from './explain.ts';

export function renderPlan(p: Plan): string {
  const lines = [`# ${p.Operation}: what loom would do, as commands (nothing was changed)`];
  for (const n of p.Notes) lines.push(`# note: ${n}`);
  for (const s of p.Steps) {
    if (s.why) lines.push(`# ${s.why}`);
    lines.push(s.cmd);
  }
  return lines.join('\n') + '\n';
}

