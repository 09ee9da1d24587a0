/** The Flightbase sidebar: workspace, GPUs, queue, the user's trainings, and a selected job's logs and metrics. */
import { Notification } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import * as api from './api';
import { communication, communicationLines, ICommunication } from './comms';
import { h, svg } from './dom';
import { formatStart, idleWarning, linePath, metricNames, series, transitions } from './model';
import { FlightbaseError, IConfig, IJobRow, IOverview, IWorkspace, MetricRecord } from './tokens';

const POLL_MS = 2000;

/** What the sidebar shows of the selected job beyond its row: output, metrics, GPU communication. */
type Detail = { logs: string; metrics: MetricRecord[]; communication: ICommunication | null };

/** The job's GPU communication (comms.ts): NCCL's transports and layout, flags in the warning colour. */
function commView(c: ICommunication | null | undefined): HTMLElement | null {
  const lines = communicationLines(c);
  if (!lines.length || (c?.source !== 'nccl' && !(c?.flags || []).length)) {
    return null; // nothing to say: no NCCL, nothing asked for that was missed
  }
  return h('ul', { className: 'fb-comm', 'aria-label': 'GPU communication' }, ...lines.map(l => h('li', { className: `fb-comm-${l.kind}` }, l.text)));
}

const LIVE = ['queued', 'starting', 'running', 'preempted'];

export class FlightbaseSidebar extends Widget {
  workspace = '';
  private config: IConfig | null = null;
  private workspaces: IWorkspace[] = [];
  private overview: IOverview | null = null;
  private states = new Map<string, string>();
  private warned = '';
  private selected: string | null = null;
  private metric = '';
  private timer: number | null = null;
  private busy = false;
  private message = '';
  onSubmit: (() => void) | null = null;

  constructor() {
    super();
    this.id = 'flightbase-sidebar';
    this.addClass('fb-Sidebar');
    this.title.caption = 'Flightbase';
    this.node.append(h('div', { className: 'fb-loading' }, 'Connecting to Flightbase…'));
  }

  async start(): Promise<void> {
    try {
      this.config = await api.config();
      this.workspaces = await api.workspaces();
      const names = this.workspaces.map(w => w.name);
      this.workspace = this.config.workspace && names.includes(this.config.workspace) ? this.config.workspace : names[0] || '';
    } catch (e) {
      this.message = `Cannot reach Flightbase: ${(e as Error).message}`;
    }
    await this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), POLL_MS);
  }

  dispose(): void {
    if (this.timer !== null) {
      window.clearInterval(this.timer);
    }
    super.dispose();
  }

  /** Poll the overview (and the selected job), notify state changes, redraw. */
  async refresh(): Promise<void> {
    if (this.busy || !this.workspace) {
      this.render(null, null);
      return;
    }
    this.busy = true;
    try {
      const ov = await api.overview(this.workspace);
      for (const n of transitions(this.states, ov.jobs)) {
        Notification.emit(n.message, n.kind, { autoClose: n.kind === 'error' ? false : 5000 });
      }
      this.states = new Map(ov.jobs.map(j => [j.id, j.state]));
      const idle = idleWarning(this.config?.lease ?? null, ov.jobs, this.warned);
      if (idle) {
        this.warned = idle.message.slice(idle.message.indexOf(': ') + 2);
        Notification.emit(idle.message, idle.kind, { autoClose: false });
      }
      this.overview = ov;
      this.message = '';
      let detail: Detail | null = null;
      if (this.selected) {
        const [logs, metrics, comm] = await Promise.all([api.logs(this.selected), api.metrics(this.selected), communication(this.selected)]);
        detail = { logs: logs.text, metrics, communication: comm };
      }
      this.render(ov, detail);
    } catch (e) {
      this.message = e instanceof FlightbaseError ? e.message : `Cannot reach Flightbase: ${(e as Error).message}`;
      this.render(this.overview, null);
    } finally {
      this.busy = false;
    }
  }

  private async act(fn: () => Promise<unknown>, done: string): Promise<void> {
    try {
      await fn();
      Notification.success(done, { autoClose: 3000 });
    } catch (e) {
      Notification.error((e as Error).message, { autoClose: 8000 });
    }
    await this.refresh();
  }

  private select(jobId: string): void {
    this.selected = jobId;
    this.metric = '';
    void this.refresh();
  }

  private render(ov: IOverview | null, detail: Detail | null): void {
    const keepScroll = (this.node.querySelector('.fb-logs') as HTMLElement | null)?.scrollTop;
    const wsSelect = h('select', { className: 'fb-workspace', 'aria-label': 'Workspace' }, ...this.workspaces.map(w => h('option', { value: w.name }, w.name)));
    wsSelect.value = this.workspace;
    wsSelect.addEventListener('change', () => {
      this.workspace = wsSelect.value;
      this.selected = null;
      this.states = new Map();
      this.overview = null;
      void this.refresh();
    });
    const quota = ov ? (ov.gpu_quota === null || ov.gpu_quota === undefined ? 'no quota' : String(ov.gpu_quota)) : '…';
    const parts: (HTMLElement | null)[] = [
      h('div', { className: 'fb-header' }, h('h2', {}, 'Flightbase'), h('span', { className: 'fb-user' }, this.config ? this.config.user : '')),
      h('div', { className: 'fb-row' }, h('label', {}, 'Workspace ', wsSelect)),
      h('div', { className: 'fb-gpus' }, `GPUs in use: ${ov ? ov.gpus_in_use : '…'} / ${quota}`),
      h(
        'div',
        { className: 'fb-row' },
        h('button', { className: 'jp-mod-styled jp-mod-accept fb-submit', onclick: () => this.onSubmit?.() }, 'Submit training…'),
        h('button', { className: 'jp-mod-styled fb-refresh', onclick: () => void this.refresh() }, 'Refresh')
      ),
      this.message ? h('div', { className: 'fb-error' }, this.message) : null
    ];
    if (ov) {
      parts.push(this.queueTable(ov), this.trainingList(ov));
      const job = ov.jobs.find(j => j.id === this.selected);
      if (job) {
        parts.push(this.jobDetail(job, detail));
      }
    }
    this.node.textContent = '';
    this.node.append(...parts.filter((p): p is HTMLElement => p !== null));
    const logs = this.node.querySelector('.fb-logs') as HTMLElement | null;
    if (logs) {
      logs.scrollTop = keepScroll === undefined ? logs.scrollHeight : keepScroll;
    }
  }

  private queueTable(ov: IOverview): HTMLElement {
    const now = Date.now() / 1000;
    return h(
      'section',
      { className: 'fb-queue' },
      h('h3', {}, `Queue (${ov.queue.length})`),
      ov.queue.length
        ? h(
            'table',
            {},
            h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, 'Job'), h('th', {}, 'GPUs'), h('th', {}, 'Starts'), h('th', {}, 'Why'))),
            h(
              'tbody',
              {},
              ...ov.queue.map(q =>
                h(
                  'tr',
                  { 'data-job': q.id },
                  h('td', {}, String(q.position ?? '')),
                  h('td', {}, q.name),
                  h('td', {}, String(q.gpus)),
                  h('td', {}, formatStart(q.estimated_start, now, q.estimated_start_range)),
                  h('td', { className: 'fb-reason' }, q.reason)
                )
              )
            )
          )
        : h('div', { className: 'fb-empty' }, 'Nothing is waiting.')
    );
  }

  private trainingList(ov: IOverview): HTMLElement {
    const items = ov.trainings.map(t => {
      const jobs = ov.jobs.filter(j => j.training_id === t.id).sort((a, b) => a.submitted_at - b.submitted_at);
      const live = LIVE.includes(t.state);
      return h(
        'li',
        { className: 'fb-training', 'data-training': t.name, 'data-state': t.state },
        h(
          'div',
          { className: 'fb-training-line' },
          h('span', { className: 'fb-name' }, t.name),
          h('span', { className: `fb-state fb-state-${t.state}` }, t.state),
          live
            ? h('button', { className: 'jp-mod-styled fb-cancel', onclick: () => void this.act(() => api.trainingAction(t.id, 'cancel'), `${t.name} cancelled`) }, 'Cancel')
            : h('button', { className: 'jp-mod-styled fb-resubmit', onclick: () => void this.act(() => api.trainingAction(t.id, 'resubmit'), `${t.name} submitted again`) }, 'Resubmit')
        ),
        h(
          'ul',
          { className: 'fb-jobs' },
          ...jobs.map(j =>
            h(
              'li',
              { className: `fb-job${j.id === this.selected ? ' fb-selected' : ''}`, 'data-job': j.id, 'data-state': j.state, onclick: () => this.select(j.id) },
              h('span', {}, j.name),
              h('span', { className: `fb-state fb-state-${j.state}` }, j.state),
              h('span', { className: 'fb-gpu-count' }, `${j.gpus} GPU${j.gpus === 1 ? '' : 's'}`)
            )
          )
        )
      );
    });
    return h('section', { className: 'fb-trainings' }, h('h3', {}, 'My trainings'), items.length ? h('ul', {}, ...items) : h('div', { className: 'fb-empty' }, 'No training yet.'));
  }

  private jobDetail(job: IJobRow, detail: Detail | null): HTMLElement {
    const names = detail ? metricNames(detail.metrics) : [];
    if (!names.includes(this.metric)) {
      this.metric = names.includes('loss') ? 'loss' : names[0] || '';
    }
    const metricSelect = h('select', { className: 'fb-metric' }, ...names.map(n => h('option', { value: n }, n)));
    metricSelect.value = this.metric;
    metricSelect.addEventListener('change', () => {
      this.metric = metricSelect.value;
      void this.refresh();
    });
    const points = detail && this.metric ? series(detail.metrics, this.metric) : [];
    const chart = svg('svg', { class: 'fb-chart', viewBox: '-2 -2 204 64', width: '100%', height: 70 });
    chart.append(svg('path', { d: linePath(points, 200, 60), fill: 'none', stroke: 'var(--jp-brand-color1)', 'stroke-width': 1.5 }));
    const last = points.length ? points[points.length - 1][1] : null;
    return h(
      'section',
      { className: 'fb-detail', 'data-job': job.id },
      h(
        'h3',
        {},
        `${job.name} `,
        h('span', { className: `fb-state fb-state-${job.state}` }, job.state),
        LIVE.includes(job.state)
          ? h('button', { className: 'jp-mod-styled fb-cancel-job', onclick: () => void this.act(() => api.cancelJob(job.id), `${job.name} cancelled`) }, 'Cancel job')
          : null
      ),
      names.length
        ? h('div', { className: 'fb-metrics' }, h('label', {}, 'Metric ', metricSelect), last !== null ? h('span', { className: 'fb-last' }, ` last: ${last.toPrecision(4)}`) : null, chart)
        : h('div', { className: 'fb-empty' }, 'No metric reported yet.'),
      commView(detail?.communication),
      h('pre', { className: 'fb-logs' }, detail ? detail.logs : '…')
    );
  }
}
