/**
 * The front end's logic, free of JupyterLab and of the DOM: turning the submit
 * form's text into a request, the manifest's parameters into form fields, error
 * fields into form fields, job state changes into notifications, metric records
 * into a chart's series.
 */
import { IBuiltinModel, IBuiltinRequest, IJobRow, IParameter, ISubmitRequest, MetricRecord } from './tokens';

export type Errors = { [field: string]: string };

/** What the user typed in the "your code" form, as text and switches. */
export interface ICodeForm {
  path: string;
  name: string;
  entrypoint: string;
  args: string;
  gpus: string;
  nodes: string;
  launcher: string;
  image: string;
  datasets: string[];
  env: string;
  grid: string;
  parallel: string;
  gpudirect_p2p: boolean;
  gpudirect_rdma: boolean;
  max_runtime: string; // minutes
}

export const EMPTY_CODE_FORM: ICodeForm = {
  path: '',
  name: '',
  entrypoint: '',
  args: '',
  gpus: '1',
  nodes: '1',
  launcher: 'none',
  image: 'training-base',
  datasets: [],
  env: '',
  grid: '',
  parallel: '1',
  gpudirect_p2p: false,
  gpudirect_rdma: false,
  max_runtime: ''
};

/** Split a command line as a POSIX shell would for words and quotes (no expansions). */
export function splitArgs(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let has = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quote) {
      if (ch === quote) {
        quote = null;
      } else if (ch === '\\' && quote === '"' && i + 1 < text.length) {
        cur += text[++i];
      } else {
        cur += ch;
      }
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      has = true;
    } else if (/\s/.test(ch)) {
      if (has || cur) {
        out.push(cur);
      }
      cur = '';
      has = false;
    } else if (ch === '\\' && i + 1 < text.length) {
      cur += text[++i];
    } else {
      cur += ch;
    }
  }
  if (quote) {
    throw new Error(`unclosed ${quote}`);
  }
  if (has || cur) {
    out.push(cur);
  }
  return out;
}

/** KEY=VALUE lines (blank lines and # comments skipped). */
export function parseEnv(text: string): { [key: string]: string } {
  const env: { [key: string]: string } = {};
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) {
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) {
      throw new Error(`line ${n + 1}: write KEY=VALUE`);
    }
    env[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  return env;
}

function integer(text: string): number | null {
  return /^\s*\d+\s*$/.test(text) ? Number(text) : null;
}

/**
 * The request for a "your code" form, or the errors of what cannot be read
 * (the rest is checked by the service, whose errors come back per field).
 */
export function codeRequest(workspace: string, f: ICodeForm): { request?: ISubmitRequest; errors: Errors } {
  const errors: Errors = {};
  const read = <T>(field: string, fn: () => T, fallback: T): T => {
    try {
      return fn();
    } catch (e) {
      errors[field] = (e as Error).message;
      return fallback;
    }
  };
  if (!f.path.trim()) {
    errors.path = 'choose a script, a notebook or a folder';
  }
  const args = read('args', () => splitArgs(f.args), []);
  const env = read('env', () => parseEnv(f.env), {});
  // the sweep's grid goes as its text: the jobqueue reads it (client/flightbase/grid.py), as it does the CLI's
  const grid = f.grid.trim();
  const gpus = integer(f.gpus);
  if (gpus === null) {
    errors.gpus = 'a whole number';
  }
  const nodes = integer(f.nodes || '1');
  if (nodes === null || nodes < 1) {
    errors.nodes = 'a whole number, 1 or more';
  } else if (gpus !== null && gpus % nodes !== 0) {
    errors.nodes = `${gpus} GPUs do not split evenly over ${nodes} nodes`;
  }
  const parallel = integer(f.parallel || '1');
  if (parallel === null) {
    errors.parallel = 'a whole number';
  }
  let maxRuntime: number | undefined;
  if (f.max_runtime.trim()) {
    const minutes = Number(f.max_runtime);
    if (!(minutes > 0)) {
      errors.max_runtime = 'minutes, more than 0';
    }
    maxRuntime = minutes * 60;
  }
  if (Object.keys(errors).length) {
    return { errors };
  }
  const request: ISubmitRequest = {
    workspace,
    path: f.path.trim(),
    args,
    gpus: gpus!,
    launcher: f.launcher,
    image: f.image,
    datasets: f.datasets,
    env,
    gpudirect_p2p: f.gpudirect_p2p,
    gpudirect_rdma: f.gpudirect_rdma
  };
  if (f.name.trim()) {
    request.name = f.name.trim();
  }
  if (f.entrypoint.trim()) {
    request.entrypoint = f.entrypoint.trim();
  }
  if (nodes! > 1) {
    request.gpus_per_node = gpus! / nodes!;
  }
  if (maxRuntime !== undefined) {
    request.max_runtime = maxRuntime;
  }
  if (grid) {
    request.sweep = { grid, parallel: parallel! };
  }
  return { request, errors };
}

/** One input of a built-in model's form, from its manifest. */
export interface IParamField {
  name: string;
  input: 'number' | 'text' | 'select' | 'checkbox';
  value: string | boolean;
  min?: number;
  max?: number;
  step?: string;
  options?: string[];
  help: string;
}

export function paramFields(model: IBuiltinModel): IParamField[] {
  return Object.entries(model.parameters).map(([name, p]: [string, IParameter]) => {
    const base = { name, help: p.help };
    if (p.type === 'boolean') {
      return { ...base, input: 'checkbox', value: Boolean(p.default) };
    }
    if (p.enum && p.enum.length) {
      return { ...base, input: 'select', value: String(p.default ?? p.enum[0]), options: p.enum.map(String) };
    }
    if (p.type === 'integer' || p.type === 'number') {
      const f: IParamField = { ...base, input: 'number', value: p.default == null ? '' : String(p.default) };
      f.step = p.type === 'integer' ? '1' : 'any';
      if (p.minimum != null) {
        f.min = p.minimum;
      }
      if (p.maximum != null) {
        f.max = p.maximum;
      }
      return f;
    }
    return { ...base, input: 'text', value: p.default == null ? '' : String(p.default) };
  });
}

/** Form values typed as the manifest says; text the service will refuse is passed as it is. */
export function paramValues(model: IBuiltinModel, values: { [name: string]: string | boolean }): { [name: string]: unknown } {
  const out: { [name: string]: unknown } = {};
  for (const [name, p] of Object.entries(model.parameters)) {
    const v = values[name];
    if (v === undefined || v === '') {
      continue;
    }
    if (p.type === 'boolean') {
      out[name] = Boolean(v);
    } else if ((p.type === 'integer' || p.type === 'number') && typeof v === 'string' && v.trim() !== '' && !isNaN(Number(v))) {
      out[name] = Number(v);
    } else {
      out[name] = v;
    }
  }
  return out;
}

export interface IBuiltinForm {
  model: string;
  name: string;
  dataset: string;
  params: { [name: string]: string | boolean };
  gpus: string;
  launcher: string;
  image: string;
  options: { [name: string]: string | boolean };
  max_runtime: string;
}

export function builtinRequest(
  workspace: string,
  model: IBuiltinModel,
  f: IBuiltinForm
): { request?: IBuiltinRequest; errors: Errors } {
  const errors: Errors = {};
  const gpus = integer(f.gpus);
  if (gpus === null) {
    errors.gpus = 'a whole number';
  }
  if (!f.name.trim()) {
    errors.name = 'name the training';
  }
  const options: { [name: string]: unknown } = {};
  for (const [k, v] of Object.entries(f.options)) {
    options[k] = typeof v === 'string' && integer(v) !== null ? Number(v) : v;
  }
  if (Object.keys(errors).length) {
    return { errors };
  }
  const request: IBuiltinRequest = {
    workspace,
    name: f.name.trim(),
    model: model.name,
    params: paramValues(model, f.params),
    gpus: gpus!,
    launcher: f.launcher,
    options,
    image: f.image
  };
  if (f.dataset) {
    request.dataset = f.dataset;
  }
  if (f.max_runtime.trim() && Number(f.max_runtime) > 0) {
    request.max_runtime = Number(f.max_runtime) * 60;
  }
  return { request, errors };
}

/** The form field a service error concerns (the rest are shown at the top of the form). */
export function formField(serverField: string): string {
  if (serverField === 'code_id' || serverField === 'path') {
    return 'path';
  }
  if (serverField === 'gpus_per_node') {
    return 'nodes';
  }
  if (serverField.startsWith('sweep.parallel')) {
    return 'parallel';
  }
  if (serverField === 'sweep' || serverField.startsWith('sweep.')) {
    return 'grid';
  }
  if (serverField.startsWith('env')) {
    return 'env';
  }
  if (serverField.startsWith('datasets') || serverField === 'dataset') {
    return serverField.startsWith('datasets') ? 'datasets' : 'dataset';
  }
  if (serverField.startsWith('args')) {
    return 'args';
  }
  return serverField;
}

/** Service errors keyed by form field; those no field shows go to `form`. */
export function formErrors(errors: Errors, known: string[]): Errors {
  const out: Errors = {};
  for (const [field, message] of Object.entries(errors)) {
    const f = formField(field);
    const key = known.includes(f) ? f : 'form';
    out[key] = out[key] ? `${out[key]}; ${field}: ${message}` : key === 'form' ? `${field}: ${message}` : message;
  }
  return out;
}

export interface INotice {
  kind: 'info' | 'success' | 'warning' | 'error';
  message: string;
}

/** Notifications for jobs whose state changed since `before` (job id -> state); jobs seen first are silent. */
export function transitions(before: Map<string, string>, jobs: IJobRow[]): INotice[] {
  const out: INotice[] = [];
  for (const j of jobs) {
    const prev = before.get(j.id);
    if (prev === undefined || prev === j.state) {
      continue;
    }
    if (j.state === 'running') {
      out.push({ kind: 'info', message: `${j.name} started (${j.gpus} GPU${j.gpus === 1 ? '' : 's'})` });
    } else if (j.state === 'succeeded') {
      out.push({ kind: 'success', message: `${j.name} finished` });
    } else if (j.state === 'failed') {
      const why = j.reason || (j.exit_code !== null ? `exit code ${j.exit_code}` : '');
      out.push({ kind: 'error', message: `${j.name} failed${why ? `: ${why}` : ''}` });
    }
  }
  return out;
}

/**
 * The idle warning of this server's own GPU lease (a Jupyter training), once: the jobqueue's
 * culler records it as the lease's reason ("idle for 48 min: the server will be stopped in
 * 12 min unless it is used"). `shown` is the warning last notified, so it is not repeated.
 */
export function idleWarning(leaseId: string | null, jobs: IJobRow[], shown: string): INotice | null {
  const lease = leaseId ? jobs.find(j => j.id === leaseId) : undefined;
  const reason = lease?.reason || '';
  if (!lease || !LIVE_LEASE.includes(lease.state) || !reason.includes('will be stopped') || reason === shown) {
    return null;
  }
  return { kind: 'warning', message: `This notebook's GPU: ${reason}` };
}

const LIVE_LEASE = ['starting', 'running'];

/** "in 3 min", "now", "unknown": when a queued job should start; with its range
 * ([earliest, latest], docs/scheduling.md "Start estimates") when that is wider than
 * 2 min: "in 10 min (now–25 min)". */
export function formatStart(
  estimated: number | null,
  nowSeconds: number,
  range?: readonly number[] | null
): string {
  if (estimated === null || estimated === undefined) {
    return 'unknown';
  }
  const s = Math.round(estimated - nowSeconds);
  const text = s <= 0 ? 'now' : `in ${span(s)}`;
  if (!range || range.length !== 2 || range[1] - range[0] < 120 || range[1] <= nowSeconds) {
    return text;
  }
  const lo = Math.round(range[0] - nowSeconds);
  return `${text} (${lo <= 0 ? 'now' : span(lo)}–${span(Math.round(range[1] - nowSeconds))})`;
}

function span(s: number): string {
  if (s < 90) {
    return `${s} s`;
  }
  if (s < 5400) {
    return `${Math.round(s / 60)} min`;
  }
  return `${(s / 3600).toFixed(1)} h`;
}

/** The names of the metrics reported (step and time are axes, not metrics). */
export function metricNames(records: MetricRecord[]): string[] {
  const names = new Set<string>();
  for (const r of records) {
    Object.keys(r).forEach(k => names.add(k));
  }
  return [...names].filter(n => !['step', 'time', 'epoch', 'rank'].includes(n)).sort();
}

/** (x, y) points of one metric: x is the record's step when it has one, else its order. */
export function series(records: MetricRecord[], name: string): [number, number][] {
  const out: [number, number][] = [];
  records.forEach((r, i) => {
    if (typeof r[name] === 'number' && isFinite(r[name])) {
      out.push([typeof r.step === 'number' ? r.step : i, r[name]]);
    }
  });
  return out;
}

/** An SVG path through the points, scaled into width x height (y grows upwards). */
export function linePath(points: [number, number][], width: number, height: number): string {
  if (!points.length) {
    return '';
  }
  const xs = points.map(p => p[0]);
  const ys = points.map(p => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x: number) => (x1 === x0 ? width / 2 : ((x - x0) / (x1 - x0)) * width);
  const sy = (y: number) => (y1 === y0 ? height / 2 : height - ((y - y0) / (y1 - y0)) * height);
  const r = (v: number) => Math.round(v * 10) / 10;
  return points.map((p, i) => `${i ? 'L' : 'M'}${r(sx(p[0]))},${r(sy(p[1]))}`).join(' ');
}
