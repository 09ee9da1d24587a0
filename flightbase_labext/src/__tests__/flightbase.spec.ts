/**
 * Unit tests of the front end's logic. The request helper is replaced by a
 * request table (method + endpoint -> answer): what the server extension would
 * answer, so the API wrappers and the form logic are tested without a server.
 */
import * as api from '../api';
import {
  builtinRequest,
  codeRequest,
  EMPTY_CODE_FORM,
  formErrors,
  formatStart,
  idleWarning,
  linePath,
  metricNames,
  paramFields,
  parseEnv,
  series,
  splitArgs,
  transitions
} from '../model';
import { FlightbaseError, IBuiltinModel, IJobRow, MetricRecord } from '../tokens';

type Answer = { status: number; body: unknown };
// an answer, or answers given in turn to the route's successive requests
const table: { [key: string]: Answer | Answer[] } = {};
const calls: { key: string; body: unknown; headers: { [name: string]: string } }[] = [];

jest.mock('../handler', () => ({
  requestAPI: async (endPoint: string, init: RequestInit = {}) => {
    const { FlightbaseError } = jest.requireActual('../tokens');
    const key = `${init.method || 'GET'} ${endPoint}`;
    calls.push({
      key,
      body: init.body ? JSON.parse(String(init.body)) : undefined,
      headers: (init.headers || {}) as { [name: string]: string }
    });
    const entry = table[key];
    const answer = Array.isArray(entry) ? entry.shift() : entry;
    if (!answer) {
      throw new FlightbaseError(404, { message: `no route ${key}` });
    }
    if (answer.status >= 400) {
      throw new FlightbaseError(answer.status, answer.body);
    }
    return answer.body;
  }
}));

beforeEach(() => {
  for (const k of Object.keys(table)) {
    delete table[k];
  }
  calls.length = 0;
});

const job = (id: string, state: string, extra: Partial<IJobRow> = {}): IJobRow => ({
  id,
  name: `job-${id}`,
  training_id: 't1',
  state: state as IJobRow['state'],
  gpus: 2,
  submitted_at: 1,
  started_at: null,
  finished_at: null,
  exit_code: null,
  reason: null,
  metrics: {},
  ...extra
});

const MODEL: IBuiltinModel = {
  name: 'tabular_mlp',
  title: 'Tabular MLP',
  task: 'tabular',
  description: 'An MLP over a CSV',
  entrypoint: 'train.py',
  dataset: { layout: 'a CSV with a label column', example: ['data.csv'] },
  parameters: {
    epochs: { type: 'integer', default: 3, minimum: 1, maximum: 100, help: 'passes over the data' },
    lr: { type: 'number', default: 0.01, minimum: 0, help: 'learning rate' },
    task: { type: 'string', default: 'classification', enum: ['classification', 'regression'], help: 'what to predict' },
    standardize: { type: 'boolean', default: true, help: 'scale the columns' },
    label: { type: 'string', default: 'label', help: 'the label column' }
  },
  gpus: { default: 1, max: 8 },
  launchers: ['horovod', 'torchrun'],
  gpu_options: ['mixed_precision', 'grad_accumulation']
};

describe('API wrappers over the request table', () => {
  it('reads the overview of a workspace', async () => {
    table['GET overview?workspace=team%20a'] = {
      status: 200,
      body: { workspace: 'team a', gpus_in_use: 2, gpu_quota: 4, queue: [], trainings: [], jobs: [] }
    };
    const ov = await api.overview('team a');
    expect(ov.gpus_in_use).toBe(2);
    expect(ov.gpu_quota).toBe(4);
    expect(calls.map(c => c.key)).toEqual(['GET overview?workspace=team%20a']);
  });

  it('posts a submission and passes the field errors of a refusal on', async () => {
    table['POST trainings'] = {
      status: 422,
      body: { status: 422, message: 'gpus: more than the quota', field: 'gpus', errors: { gpus: 'more than the quota' } }
    };
    const { request } = codeRequest('ws', { ...EMPTY_CODE_FORM, path: 'train.py', gpus: '64' });
    await expect(api.submit(request!)).rejects.toMatchObject({ status: 422, field: 'gpus', errors: { gpus: 'more than the quota' } });
    expect(calls[0].body).toMatchObject({ workspace: 'ws', path: 'train.py', gpus: 64, launcher: 'none' });
  });

  it('sends a creation again with the same key when its answer is lost, never after a refusal', async () => {
    const { request } = codeRequest('ws', { ...EMPTY_CODE_FORM, path: 'train.py' });
    const waits: number[] = [];
    const wait = async (ms: number) => {
      waits.push(ms);
    };
    table['POST trainings'] = [
      { status: 503, body: { status: 503, message: 'the jobqueue is restarting' } },
      { status: 502, body: { status: 502, message: 'bad gateway' } },
      { status: 201, body: { id: 't9', state: 'queued' } }
    ];
    const made = await api.createOnce<{ id: string }>('trainings', request, undefined, 3, wait);
    expect(made.id).toBe('t9');
    const keys = calls.map(c => c.headers['Idempotency-Key']);
    expect(keys).toHaveLength(3);
    expect(new Set(keys).size).toBe(1);
    expect(keys[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(waits).toEqual([500, 1000]);

    calls.length = 0;
    table['POST trainings'] = [
      { status: 422, body: { status: 422, message: 'gpus: more than the quota', field: 'gpus' } },
      { status: 201, body: { id: 'never', state: 'queued' } }
    ];
    await expect(api.createOnce('trainings', request, undefined, 3, wait)).rejects.toMatchObject({ status: 422 });
    expect(calls).toHaveLength(1);

    calls.length = 0;
    table['POST trainings'] = { status: 504, body: { status: 504, message: 'timeout' } };
    await expect(api.createOnce('trainings', request, 'k-1', 2, wait)).rejects.toMatchObject({ status: 504 });
    expect(calls.map(c => c.headers['Idempotency-Key'])).toEqual(['k-1', 'k-1', 'k-1']);
  });

  it('gives each submission a key of its own', async () => {
    table['POST trainings'] = { status: 201, body: { id: 't1', state: 'queued' } };
    const { request } = codeRequest('ws', { ...EMPTY_CODE_FORM, path: 'train.py' });
    await api.submit(request!);
    await api.submit(request!);
    const keys = calls.map(c => c.headers['Idempotency-Key']);
    expect(keys).toHaveLength(2);
    expect(keys[0]).not.toEqual(keys[1]);
  });

  it('cancels and resubmits trainings by id', async () => {
    table['POST trainings/t1/cancel'] = { status: 200, body: { id: 't1', state: 'cancelled' } };
    table['POST trainings/t1/resubmit'] = { status: 201, body: { id: 't2', state: 'queued' } };
    expect((await api.trainingAction('t1', 'cancel')).state).toBe('cancelled');
    expect((await api.trainingAction('t1', 'resubmit')).id).toBe('t2');
    expect(calls.map(c => c.key)).toEqual(['POST trainings/t1/cancel', 'POST trainings/t1/resubmit']);
  });

  it('raises FlightbaseError for a route that is not there', async () => {
    await expect(api.job('nope')).rejects.toBeInstanceOf(FlightbaseError);
  });
});

describe('the submit form', () => {
  it('builds a 2-GPU Horovod sweep over 2 nodes with env and GPUDirect switches', () => {
    const { request, errors } = codeRequest('ws', {
      ...EMPTY_CODE_FORM,
      path: 'nb/train.ipynb',
      args: `--epochs 3 --note "a b" 'c d'`,
      gpus: '4',
      nodes: '2',
      launcher: 'horovod',
      datasets: ['images@2'],
      env: 'A=1\n# comment\nB=x=y',
      grid: ' lr=[0.1,0.01]\nwarmup=[true,false] ',
      parallel: '2',
      gpudirect_rdma: true,
      max_runtime: '30'
    });
    expect(errors).toEqual({});
    expect(request).toEqual({
      workspace: 'ws',
      path: 'nb/train.ipynb',
      args: ['--epochs', '3', '--note', 'a b', 'c d'],
      gpus: 4,
      gpus_per_node: 2,
      launcher: 'horovod',
      image: 'training-base',
      datasets: ['images@2'],
      env: { A: '1', B: 'x=y' },
      gpudirect_p2p: false,
      gpudirect_rdma: true,
      max_runtime: 1800,
      sweep: { grid: 'lr=[0.1,0.01]\nwarmup=[true,false]', parallel: 2 }
    });
  });

  it('names each field it cannot read', () => {
    const { request, errors } = codeRequest('ws', {
      ...EMPTY_CODE_FORM,
      path: '',
      args: '"open',
      gpus: '3',
      nodes: '2',
      env: 'NOEQUALS',
      max_runtime: '-1'
    });
    expect(request).toBeUndefined();
    expect(errors).toEqual({
      path: 'choose a script, a notebook or a folder',
      args: 'unclosed "',
      env: 'line 1: write KEY=VALUE',
      nodes: '3 GPUs do not split evenly over 2 nodes',
      max_runtime: 'minutes, more than 0'
    });
  });

  it('maps service error fields to form fields, the rest to the top', () => {
    const known = Object.keys(EMPTY_CODE_FORM).concat('form');
    expect(
      formErrors({ code_id: 'no code upload', gpus_per_node: 'too many', 'sweep.grid': 'empty', 'env.PATH': 'set by the platform', priority: 'too high' }, known)
    ).toEqual({ path: 'no code upload', nodes: 'too many', grid: 'empty', env: 'set by the platform', form: 'priority: too high' });
  });

  it('small parsers', () => {
    expect(splitArgs('  a  "b c"  \'\' d\\ e')).toEqual(['a', 'b c', '', 'd e']);
    expect(parseEnv('X=1\n\nY=')).toEqual({ X: '1', Y: '' });
  });
});

describe('built-in models', () => {
  it('renders each parameter of the manifest as an input', () => {
    expect(paramFields(MODEL)).toEqual([
      { name: 'epochs', help: 'passes over the data', input: 'number', value: '3', step: '1', min: 1, max: 100 },
      { name: 'lr', help: 'learning rate', input: 'number', value: '0.01', step: 'any', min: 0 },
      { name: 'task', help: 'what to predict', input: 'select', value: 'classification', options: ['classification', 'regression'] },
      { name: 'standardize', help: 'scale the columns', input: 'checkbox', value: true },
      { name: 'label', help: 'the label column', input: 'text', value: 'label' }
    ]);
  });

  it('types the values as the manifest says and leaves bad text for the service to refuse', () => {
    const { request } = builtinRequest('ws', MODEL, {
      model: 'tabular_mlp',
      name: 'mlp',
      dataset: 'table',
      params: { epochs: '5', lr: 'fast', task: 'regression', standardize: false, label: '' },
      gpus: '2',
      launcher: 'horovod',
      image: 'training-base',
      options: { mixed_precision: true, grad_accumulation: '4' },
      max_runtime: ''
    });
    expect(request).toEqual({
      workspace: 'ws',
      name: 'mlp',
      model: 'tabular_mlp',
      dataset: 'table',
      params: { epochs: 5, lr: 'fast', task: 'regression', standardize: false },
      gpus: 2,
      launcher: 'horovod',
      options: { mixed_precision: true, grad_accumulation: 4 },
      image: 'training-base'
    });
  });
});

describe('the sidebar', () => {
  it('notifies start, end and failure, and not jobs seen for the first time', () => {
    const before = new Map([
      ['a', 'queued'],
      ['b', 'running'],
      ['c', 'running'],
      ['d', 'running']
    ]);
    const notices = transitions(before, [
      job('a', 'running'),
      job('b', 'succeeded'),
      job('c', 'failed', { exit_code: 3 }),
      job('d', 'running'),
      job('e', 'failed')
    ]);
    expect(notices).toEqual([
      { kind: 'info', message: 'job-a started (2 GPUs)' },
      { kind: 'success', message: 'job-b finished' },
      { kind: 'error', message: 'job-c failed: exit code 3' }
    ]);
  });

  it("warns once when this notebook's GPU lease is about to be culled for idleness", () => {
    const warning = 'idle for 48 min: the server will be stopped in 12 min unless it is used';
    const lease = job('L', 'running', { reason: warning });
    expect(idleWarning('L', [lease], '')).toEqual({ kind: 'warning', message: `This notebook's GPU: ${warning}` });
    expect(idleWarning('L', [lease], warning)).toBeNull(); // already shown
    expect(idleWarning(null, [lease], '')).toBeNull(); // a server without a lease
    expect(idleWarning('L', [job('L', 'running', { reason: null })], '')).toBeNull();
    expect(idleWarning('L', [job('L', 'succeeded', { reason: warning })], '')).toBeNull();
    expect(idleWarning('X', [lease], '')).toBeNull(); // another server's lease
  });

  it('says when a queued job should start', () => {
    expect(formatStart(null, 100)).toBe('unknown');
    expect(formatStart(90, 100)).toBe('now');
    expect(formatStart(130, 100)).toBe('in 30 s');
    expect(formatStart(100 + 600, 100)).toBe('in 10 min');
    expect(formatStart(100 + 7200, 100)).toBe('in 2.0 h');
  });

  it('shows the range of an uncertain start estimate', () => {
    expect(formatStart(100 + 600, 100, [100 + 300, 100 + 1500])).toBe('in 10 min (5 min–25 min)');
    expect(formatStart(100 + 600, 100, [50, 100 + 7200])).toBe('in 10 min (now–2.0 h)');
    expect(formatStart(100 + 600, 100, [100 + 590, 100 + 650])).toBe('in 10 min'); // narrow: no range
    expect(formatStart(100 + 600, 100, null)).toBe('in 10 min');
    expect(formatStart(null, 100, [1, 2])).toBe('unknown');
  });

  it('charts a metric by step', () => {
    const records: MetricRecord[] = [{ step: 1, loss: 1.0 }, { step: 2, loss: 0.5, accuracy: 0.7 }, { step: 3, loss: 0.25 }, { time: 9 }];
    expect(metricNames(records)).toEqual(['accuracy', 'loss']);
    expect(series(records, 'loss')).toEqual([[1, 1], [2, 0.5], [3, 0.25]]);
    expect(linePath(series(records, 'loss'), 200, 60)).toBe('M0,0 L100,40 L200,60');
    expect(linePath([[5, 1]], 200, 60)).toBe('M100,30');
    expect(linePath([], 200, 60)).toBe('');
  });
});
