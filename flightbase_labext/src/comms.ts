/**
 * A job's GPU communication in the sidebar: what NCCL did (transports, rings, trees) and the
 * flags on the GPUDirect switches (GET /flightbase/jobs/<id>: the jobqueue's JobOut.communication).
 * Pure functions, no JupyterLab imports: the unit tests load this as it is.
 */
import type { components } from './generated/jobqueue';
import { requestAPI } from './handler';

export type ICommunication = components['schemas']['CommunicationOut'];

export interface ICommLine {
  kind: 'head' | 'transport' | 'layout' | 'flag' | 'note';
  text: string;
}

/** The job's record (null: none, e.g. a notebook's lease). */
export const communication = (jobId: string) =>
  requestAPI<{ communication?: ICommunication | null }>(`jobs/${encodeURIComponent(jobId)}`).then(j => j.communication ?? null);

/** The record as lines: a heading, connections per transport, rings and trees, then flags and notes. */
export function communicationLines(c: ICommunication | null | undefined): ICommLine[] {
  if (!c) {
    return [];
  }
  const lines: ICommLine[] = [];
  if (c.source === 'nccl') {
    const net = Array.isArray(c.network) ? c.network.join(', ') : c.network || '-';
    lines.push({ kind: 'head', text: `NCCL ${c.nccl_version || ''}`.trimEnd() + `: ${c.ranks ?? 0} ranks, network ${net}${c.path_intra ? `, GPU path ${c.path_intra}` : ''}` });
    for (const [label, n] of Object.entries(c.summary || {})) {
      lines.push({ kind: 'transport', text: `${label}: ${n} connection${n === 1 ? '' : 's'}` });
    }
    for (const [ch, order] of Object.entries(c.rings || {})) {
      lines.push({ kind: 'layout', text: `ring ${ch.padStart(2, '0')}: ${order.join(' → ')}` });
    }
    for (const [ch, nodes] of Object.entries(c.trees || {})) {
      const edges = Object.entries(nodes)
        .filter(([, n]) => typeof n.parent === 'number' && n.parent >= 0)
        .map(([r, n]) => `${r}→${n.parent}`);
      lines.push({ kind: 'layout', text: `tree ${ch.padStart(2, '0')}: ${edges.join(', ') || 'root only'}` });
    }
  } else {
    lines.push({ kind: 'head', text: 'No NCCL log' });
  }
  const used = c.used || {};
  for (const [feature, asked] of Object.entries(c.requested || {})) {
    if (asked) {
      const u = used[feature];
      lines.push({ kind: 'note', text: `${feature.toUpperCase()} asked for: ${u === true ? 'used' : u === false ? 'not used' : 'cannot tell yet'}` });
    }
  }
  for (const f of c.flags || []) {
    lines.push({ kind: 'flag', text: `${f.feature.toUpperCase()}: ${f.reason}` });
  }
  for (const n of c.notes || []) {
    lines.push({ kind: 'note', text: n });
  }
  return lines;
}
