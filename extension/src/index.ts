import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';

import { MlopsSidebar } from './sidebar';

/**
 * The MLOps side panel: the project's runs beside the notebook, live.
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-mlops:sidebar',
  description: 'Browse, follow and compare jupyter-mlops runs.',
  autoStart: true,
  optional: [INotebookTracker, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker | null,
    labShell: ILabShell | null
  ) => {
    const sidebar = new MlopsSidebar();
    app.shell.add(sidebar, 'left', { rank: 650 });
    if (notebooks) {
      const follow = () => sidebar.setNotebook(notebooks.currentWidget?.context.path ?? null);
      notebooks.currentChanged.connect(follow);
      follow();
    }
    void labShell;
  }
};

export default plugin;
