// The trace as text: apart from tracer.ts so that the CLI renders a trace without loading the kernel modules.
import type { TraceResult } from './tracer.ts';

/** The trace as lines for a terminal. */
export function renderTrace(r: TraceResult): string {
  const what = r.Protocol === 'icmp' ? 'icmp echo' : `${r.Protocol} port ${r.Port}`;
  const lines = [`trace ${r.Source.name}${r.Source.ip ? ` (${r.Source.ip})` : ''} → ${r.Destination.name} (${r.Destination.ip}), ${what}`];
  for (const h of r.Hops) {
    if (h.kind === 'rule' || h.kind === 'policy') {
      const pk = h.packet ? ` [${h.packet.saddr}${h.packet.sport ? `:${h.packet.sport}` : ''} → ${h.packet.daddr}${h.packet.dport ? `:${h.packet.dport}` : ''}${h.iif ? ` in ${h.iif}` : ''}${h.oif ? ` out ${h.oif}` : ''}]` : '';
      // a rule of another host (a trace across an overlay network) says where
      const at = h.where !== 'host' ? `[${h.where}] ` : '';
      lines.push(`  ${h.direction === 'reply' ? '←' : '→'} ${at}${h.text} => ${h.verdict}${pk}`);
      if (h.meaning) lines.push(`      ${h.meaning}`);
    } else {
      lines.push(`  ${h.where}: ${h.text}`);
    }
  }
  lines.push(`verdict: ${r.Verdict}: ${r.Reason}`);
  return lines.join('\n') + '\n';
}
