/** The submit dialog: your code (a file of this server) or a built-in model, with errors shown at their field. */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import * as api from './api';
import { h } from './dom';
import {
  builtinRequest,
  codeRequest,
  EMPTY_CODE_FORM,
  Errors,
  formErrors,
  IBuiltinForm,
  ICodeForm,
  paramFields
} from './model';
import { FlightbaseError, IBuiltinModel, IDataset, IImage, ITraining } from './tokens';

export interface ISubmitContext {
  workspace: string;
  datasets: IDataset[];
  images: IImage[];
  models: IBuiltinModel[];
}

export interface IFormValue {
  mode: 'code' | 'builtin';
  code: ICodeForm;
  builtin: IBuiltinForm;
}

const CODE_FIELDS = Object.keys(EMPTY_CODE_FORM).concat(['form']);
const LAUNCHERS = ['none', 'horovod', 'torchrun', 'mpi'];
const OPTION_LABELS: { [name: string]: string } = {
  mixed_precision: 'Mixed precision',
  grad_accumulation: 'Gradient accumulation (micro-batches)',
  fp16_compression: 'Horovod fp16 gradient compression',
  gpudirect_p2p: 'GPUDirect P2P',
  gpudirect_rdma: 'GPUDirect RDMA'
};

function emptyBuiltin(model: IBuiltinModel | undefined): IBuiltinForm {
  return {
    model: model?.name || '',
    name: model ? model.name.replace(/_/g, '-') : '',
    dataset: '',
    params: {},
    gpus: String(model?.gpus.default ?? 1),
    launcher: model?.launchers[0] || 'horovod',
    image: 'training-base',
    options: {},
    max_runtime: ''
  };
}

/** The dialog's body: both forms, one shown; getValue() reads them back. */
export class SubmitForm extends Widget {
  private value: IFormValue;

  constructor(private ctx: ISubmitContext, value: IFormValue, private errors: Errors) {
    super();
    this.addClass('fb-SubmitForm');
    this.value = value;
    this.render();
  }

  getValue(): IFormValue {
    return this.read();
  }

  private read(): IFormValue {
    const node = this.node;
    const val = (name: string) => (node.querySelector(`[name="${name}"]`) as HTMLInputElement | null)?.value ?? '';
    const checked = (name: string) => (node.querySelector(`[name="${name}"]`) as HTMLInputElement | null)?.checked ?? false;
    const mode = (node.querySelector('input[name="mode"]:checked') as HTMLInputElement | null)?.value === 'builtin' ? 'builtin' : 'code';
    const code: ICodeForm = {
      path: val('path'),
      name: val('name'),
      entrypoint: val('entrypoint'),
      args: val('args'),
      gpus: val('gpus'),
      nodes: val('nodes'),
      launcher: val('launcher'),
      image: val('image'),
      datasets: [...node.querySelectorAll<HTMLInputElement>('input[name="datasets"]:checked')].map(i => i.value),
      env: val('env'),
      grid: val('grid'),
      parallel: val('parallel'),
      gpudirect_p2p: checked('gpudirect_p2p'),
      gpudirect_rdma: checked('gpudirect_rdma'),
      max_runtime: val('max_runtime')
    };
    const model = this.model(val('b.model'));
    const builtin: IBuiltinForm = { ...emptyBuiltin(model) };
    if (model) {
      builtin.name = val('b.name');
      builtin.dataset = val('b.dataset');
      builtin.gpus = val('b.gpus');
      builtin.launcher = val('b.launcher');
      builtin.image = val('b.image');
      builtin.max_runtime = val('b.max_runtime');
      for (const f of paramFields(model)) {
        builtin.params[f.name] = f.input === 'checkbox' ? checked(`params.${f.name}`) : val(`params.${f.name}`);
      }
      for (const o of model.gpu_options) {
        builtin.options[o] = o === 'grad_accumulation' ? val(`options.${o}`) : checked(`options.${o}`);
      }
    }
    return { mode, code, builtin };
  }

  private model(name: string): IBuiltinModel | undefined {
    return this.ctx.models.find(m => m.name === name);
  }

  private error(field: string): HTMLElement | null {
    const msg = this.errors[field];
    return msg ? h('div', { className: 'fb-error', 'data-error-for': field }, msg) : null;
  }

  private row(label: string, field: string, input: HTMLElement, help?: string): HTMLElement {
    return h(
      'div',
      { className: 'fb-field', 'data-field': field },
      h('label', {}, label, input),
      help ? h('div', { className: 'fb-help' }, help) : null,
      this.error(field)
    );
  }

  private select(name: string, options: string[], value: string): HTMLSelectElement {
    const s = h('select', { name }, ...options.map(o => h('option', { value: o }, o)));
    s.value = value;
    return s;
  }

  private render(): void {
    const v = this.value;
    const c = v.code;
    const b = v.builtin;
    this.node.textContent = '';
    const modeSwitch = h(
      'div',
      { className: 'fb-mode' },
      h('label', {}, h('input', { type: 'radio', name: 'mode', value: 'code', checked: v.mode === 'code', onchange: () => this.rerender() }), ' Your code'),
      h('label', {}, h('input', { type: 'radio', name: 'mode', value: 'builtin', checked: v.mode === 'builtin', onchange: () => this.rerender() }), ' Built-in model')
    );
    const images = ['training-base', ...this.ctx.images.map(i => i.name).filter(n => n !== 'training-base')];
    this.node.append(h('div', { className: 'fb-workspace-line' }, `Workspace: ${this.ctx.workspace}`), modeSwitch, this.error('form') || '');

    if (v.mode === 'code') {
      const datasets = h(
        'div',
        { className: 'fb-datasets' },
        ...(this.ctx.datasets.length
          ? this.ctx.datasets.map(d =>
              h('label', {}, h('input', { type: 'checkbox', name: 'datasets', value: d.name, checked: c.datasets.includes(d.name) }), ` ${d.name}`)
            )
          : ['no dataset in this workspace'])
      );
      this.node.append(
        this.row('Script, notebook or folder', 'path', h('input', { name: 'path', value: c.path, placeholder: 'train.py' }), 'A path in this server; a notebook is converted to a script'),
        this.row('Entry point', 'entrypoint', h('input', { name: 'entrypoint', value: c.entrypoint, placeholder: 'the script itself' }), 'For a folder: the script inside it to run'),
        this.row('Arguments', 'args', h('input', { name: 'args', value: c.args, placeholder: '--epochs 3' })),
        this.row('Name', 'name', h('input', { name: 'name', value: c.name, placeholder: 'from the script' })),
        h(
          'div',
          { className: 'fb-inline' },
          this.row('GPUs', 'gpus', h('input', { name: 'gpus', type: 'number', min: 1, value: c.gpus })),
          this.row('Nodes', 'nodes', h('input', { name: 'nodes', type: 'number', min: 1, value: c.nodes })),
          this.row('Launcher', 'launcher', this.select('launcher', LAUNCHERS, c.launcher))
        ),
        this.row('Image', 'image', this.select('image', images, c.image)),
        this.row('Datasets', 'datasets', datasets),
        this.row('Environment', 'env', h('textarea', { name: 'env', rows: 2, placeholder: 'KEY=VALUE, one a line' }, c.env)),
        this.row('Sweep: parameter grid', 'grid', h('textarea', { name: 'grid', rows: 2, placeholder: 'lr=[0.1,0.01] batch=[32,64] (every combination is a job)' }, c.grid)),
        this.row('Sweep: jobs at once', 'parallel', h('input', { name: 'parallel', type: 'number', min: 1, value: c.parallel })),
        h(
          'div',
          { className: 'fb-inline' },
          this.row('', 'gpudirect_p2p', h('span', {}, h('input', { type: 'checkbox', name: 'gpudirect_p2p', checked: c.gpudirect_p2p }), ' GPUDirect P2P')),
          this.row('', 'gpudirect_rdma', h('span', {}, h('input', { type: 'checkbox', name: 'gpudirect_rdma', checked: c.gpudirect_rdma }), ' GPUDirect RDMA'))
        ),
        this.row('Max runtime (minutes)', 'max_runtime', h('input', { name: 'max_runtime', type: 'number', min: 0, value: c.max_runtime, placeholder: 'no limit' }))
      );
      return;
    }

    const model = this.model(b.model) || this.ctx.models[0];
    if (!model) {
      this.node.append(h('div', {}, 'No built-in model is installed.'));
      return;
    }
    const modelSelect = this.select('b.model', this.ctx.models.map(m => m.name), model.name);
    modelSelect.addEventListener('change', () => {
      const value = this.read();
      value.builtin = emptyBuiltin(this.model(value.builtin.model));
      this.value = value;
      this.render();
    });
    const params = paramFields(model).map(f => {
      const cur = b.params[f.name];
      const field = `params.${f.name}`;
      let input: HTMLElement;
      if (f.input === 'checkbox') {
        input = h('input', { type: 'checkbox', name: field, checked: cur === undefined ? Boolean(f.value) : Boolean(cur) });
      } else if (f.input === 'select') {
        input = this.select(field, f.options!, String(cur ?? f.value));
      } else {
        input = h('input', { name: field, type: f.input, value: String(cur ?? f.value), min: f.min, max: f.max, step: f.step });
      }
      return this.row(f.name, field, input, f.help);
    });
    const options = model.gpu_options.map(o => {
      const field = `options.${o}`;
      const input =
        o === 'grad_accumulation'
          ? h('input', { name: field, type: 'number', min: 1, value: String(b.options[o] ?? '1') })
          : h('input', { type: 'checkbox', name: field, checked: Boolean(b.options[o]) });
      return this.row(OPTION_LABELS[o] || o, field, input);
    });
    this.node.append(
      this.row('Model', 'model', modelSelect, `${model.title}: ${model.description}`),
      this.row('Name', 'name', h('input', { name: 'b.name', value: b.name })),
      model.dataset
        ? this.row('Dataset', 'dataset', this.select('b.dataset', ['', ...this.ctx.datasets.map(d => d.name)], b.dataset), `Layout: ${model.dataset.layout}`)
        : h('input', { type: 'hidden', name: 'b.dataset', value: '' }),
      h('fieldset', { className: 'fb-params' }, h('legend', {}, 'Parameters'), ...params),
      h(
        'div',
        { className: 'fb-inline' },
        this.row(`GPUs (max ${model.gpus.max})`, 'gpus', h('input', { name: 'b.gpus', type: 'number', min: 1, max: model.gpus.max, value: b.gpus })),
        this.row('Launcher', 'launcher', this.select('b.launcher', model.launchers, b.launcher))
      ),
      options.length ? h('fieldset', { className: 'fb-options' }, h('legend', {}, 'GPU options'), ...options) : '',
      this.row('Image', 'image', this.select('b.image', images, b.image)),
      this.row('Max runtime (minutes)', 'max_runtime', h('input', { name: 'b.max_runtime', type: 'number', min: 0, value: b.max_runtime, placeholder: 'no limit' }))
    );
  }

  private rerender(): void {
    this.value = this.read();
    this.errors = {};
    this.render();
  }
}

function builtinKnown(model: IBuiltinModel | undefined): string[] {
  const params = model ? Object.keys(model.parameters).map(p => `params.${p}`) : [];
  const options = model ? model.gpu_options.map(o => `options.${o}`) : [];
  return ['model', 'name', 'dataset', 'gpus', 'launcher', 'image', 'max_runtime', 'form', ...params, ...options];
}

/**
 * Show the dialog until the training is created or the user cancels; a refused
 * request opens it again with what was typed and each error at its field.
 */
export async function submitDialog(ctx: ISubmitContext, initial: Partial<ICodeForm> = {}): Promise<ITraining | null> {
  let value: IFormValue = {
    mode: 'code',
    code: { ...EMPTY_CODE_FORM, ...initial },
    builtin: emptyBuiltin(ctx.models[0])
  };
  let errors: Errors = {};
  for (;;) {
    const body = new SubmitForm(ctx, value, errors);
    const result = await showDialog<IFormValue>({
      title: 'Submit a training',
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Submit' })]
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    value = result.value;
    const model = ctx.models.find(m => m.name === value.builtin.model);
    const known = value.mode === 'code' ? CODE_FIELDS : builtinKnown(model);
    const built =
      value.mode === 'code'
        ? codeRequest(ctx.workspace, value.code)
        : model
          ? builtinRequest(ctx.workspace, model, value.builtin)
          : { errors: { model: 'choose a model' } as Errors };
    if (!built.request) {
      errors = built.errors;
      continue;
    }
    try {
      return value.mode === 'code'
        ? await api.submit(built.request as Parameters<typeof api.submit>[0])
        : await api.submitBuiltin(built.request as Parameters<typeof api.submitBuiltin>[0]);
    } catch (e) {
      if (e instanceof FlightbaseError && e.status >= 400 && e.status < 500) {
        errors = Object.keys(e.errors).length ? formErrors(e.errors, known) : { form: e.message };
        continue;
      }
      throw e;
    }
  }
}
