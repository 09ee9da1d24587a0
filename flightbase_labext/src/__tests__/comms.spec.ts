/** The sidebar's communication lines, from records as the jobqueue answers them. */
import { communication, communicationLines, ICommunication } from '../comms';

jest.mock('../handler', () => ({
  requestAPI: async (endPoint: string) => {
    if (endPoint === 'jobs/j%201') {
      return { id: 'j 1', communication: { source: 'none', files: 0, requested: { p2p: true }, flags: [] } };
    }
    throw new Error(`no route ${endPoint}`);
  }
}));

const nvlink: ICommunication = {
  source: 'nccl',
  files: 2,
  nccl_version: '2.21.5+cuda12.4',
  ranks: 2,
  network: 'Socket',
  ib_missing: false,
  path_intra: 'NVL',
  summary: { 'P2P/NVLink': 4 },
  rings: { '0': [0, 1] },
  trees: { '0': { '0': { children: [1], parent: -1 }, '1': { children: [], parent: 0 } } },
  requested: { p2p: true, rdma: false },
  used: { p2p: true, rdma: null },
  flags: [],
  notes: []
};

describe('communicationLines', () => {
  it('shows transports, rings and trees of an NCCL record', () => {
    expect(communicationLines(nvlink)).toEqual([
      { kind: 'head', text: 'NCCL 2.21.5+cuda12.4: 2 ranks, network Socket, GPU path NVL' },
      { kind: 'transport', text: 'P2P/NVLink: 4 connections' },
      { kind: 'layout', text: 'ring 00: 0 → 1' },
      { kind: 'layout', text: 'tree 00: 1→0' },
      { kind: 'note', text: 'P2P asked for: used' }
    ]);
  });

  it('flags a switch that was not used, with the reason', () => {
    const cpu: ICommunication = {
      source: 'none',
      files: 0,
      ranks: 0,
      ib_missing: false,
      requested: { p2p: true, rdma: false },
      used: { p2p: false, rdma: null },
      flags: [{ feature: 'p2p', reason: 'no GPUs: the job ran on CPU slots' }]
    };
    expect(communicationLines(cpu)).toEqual([
      { kind: 'head', text: 'No NCCL log' },
      { kind: 'note', text: 'P2P asked for: not used' },
      { kind: 'flag', text: 'P2P: no GPUs: the job ran on CPU slots' }
    ]);
  });

  it('shows nothing without a record', () => {
    expect(communicationLines(null)).toEqual([]);
  });

  it('reads the record from the job', async () => {
    const c = await communication('j 1');
    expect(c?.requested).toEqual({ p2p: true });
  });
});
