import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Notification, ToolbarButton } from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { INotebookModel, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon, runIcon } from '@jupyterlab/ui-components';
import { IDisposable } from '@lumino/disposable';

import * as api from './api';
import { ICodeForm } from './model';
import { FlightbaseSidebar } from './sidebar';
import { submitDialog } from './submit';
import { IBuiltinModel } from './tokens';

const flightbaseIcon = new LabIcon({
  name: 'flightbase:icon',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" d="M21 16v-2l-8-5V3.5a1.5 1.5 0 0 0-3 0V9l-8 5v2l8-2.5V19l-2 1.5V22l3.5-1 3.5 1v-1.5L13 19v-5.5z"/></svg>'
});

const CMD_SUBMIT = 'flightbase:submit';
const CMD_SUBMIT_FILE = 'flightbase:submit-file';

/** Adds "Submit as training" to each notebook's toolbar. */
class NotebookButton implements DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel> {
  constructor(private app: JupyterFrontEnd) {}

  createNew(panel: NotebookPanel): IDisposable {
    const button = new ToolbarButton({
      className: 'fb-notebook-submit',
      icon: runIcon,
      label: 'Submit as training',
      tooltip: 'Submit this notebook to Flightbase as a training',
      onClick: () => void this.app.commands.execute(CMD_SUBMIT, { path: panel.context.path })
    });
    panel.toolbar.insertItem(10, 'flightbaseSubmit', button);
    return button;
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'flightbase-labext:plugin',
  description: 'Flightbase: submit trainings and watch the queue, jobs, logs and metrics',
  autoStart: true,
  requires: [IFileBrowserFactory],
  optional: [ILayoutRestorer],
  activate: (app: JupyterFrontEnd, browser: IFileBrowserFactory, restorer: ILayoutRestorer | null) => {
    const sidebar = new FlightbaseSidebar();
    sidebar.title.icon = flightbaseIcon;
    app.shell.add(sidebar, 'left', { rank: 900 });
    restorer?.add(sidebar, 'flightbase-sidebar');
    void sidebar.start();

    let models: IBuiltinModel[] | null = null;
    const submit = async (initial: Partial<ICodeForm>) => {
      const ws = sidebar.workspace;
      if (!ws) {
        Notification.error('You are in no Flightbase workspace.');
        return;
      }
      try {
        models = models ?? (await api.builtinModels());
        const [datasets, images] = await Promise.all([api.datasets(ws), api.images(ws)]);
        const training = await submitDialog({ workspace: ws, datasets, images, models }, initial);
        if (training) {
          Notification.success(`Training ${training.name} submitted (${training.jobs.length} job${training.jobs.length === 1 ? '' : 's'})`, { autoClose: 5000 });
          app.shell.activateById(sidebar.id);
          await sidebar.refresh();
        }
      } catch (e) {
        Notification.error(`Flightbase: ${(e as Error).message}`);
      }
    };
    sidebar.onSubmit = () => void submit({});

    app.commands.addCommand(CMD_SUBMIT, {
      label: 'Submit a Flightbase training…',
      caption: 'Submit a script, a notebook or a built-in model as a training',
      execute: args => submit(args.path ? { path: String(args.path) } : {})
    });
    app.commands.addCommand(CMD_SUBMIT_FILE, {
      label: 'Submit as training',
      icon: runIcon,
      isVisible: () => {
        const item = browser.tracker.currentWidget?.selectedItems().next();
        const path = item && !item.done ? item.value.path : '';
        return /\.(py|ipynb)$/.test(path);
      },
      execute: () => {
        const item = browser.tracker.currentWidget?.selectedItems().next();
        if (item && !item.done) {
          return submit({ path: item.value.path });
        }
      }
    });
    app.contextMenu.addItem({ command: CMD_SUBMIT_FILE, selector: '.jp-DirListing-item[data-isdir="false"]', rank: 3 });
    app.docRegistry.addWidgetExtension('Notebook', new NotebookButton(app));
  }
};

export default plugin;
