import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Clipboard, ICommandPalette, InputDialog, MainAreaWidget } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { ArtifactView } from './artifactView';
import { CompareView } from './compareView';
import { RunDetail } from './runDetail';
import { mlopsIcon, MlopsSidebar } from './sidebar';
import { ISnippetActions } from './snippets';

const CATEGORY = 'MLOps';

export const CommandIDs = {
  showPanel: 'jupyter-mlops:show-panel',
  openRun: 'jupyter-mlops:open-run',
  compare: 'jupyter-mlops:compare-runs'
};

/**
 * The MLOps workspace: a compact sidebar of runs and models beside the notebook, and
 * main-area tabs for a run's detail and for a compare. Everything it opens is also a
 * command, in the command palette under "MLOps".
 */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-mlops:sidebar',
  description: 'Browse, follow and compare jupyter-mlops runs.',
  autoStart: true,
  optional: [INotebookTracker, ILabShell, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker | null,
    labShell: ILabShell | null,
    palette: ICommandPalette | null
  ) => {
    const open = new Map<string, MainAreaWidget>();
    /** The tab for `key`, reused if already open, so one run never has two tabs. */
    const show = (key: string, make: () => Widget) => {
      let tab = open.get(key);
      if (!tab || tab.isDisposed) {
        const content = make();
        tab = new MainAreaWidget({ content });
        tab.id = `jupyter-mlops-${key}`;
        tab.title.icon = mlopsIcon;
        tab.title.closable = true;
        content.title.changed.connect(() => {
          tab!.title.label = content.title.label;
          tab!.title.caption = content.title.caption;
        });
        tab.title.label = content.title.label;
        open.set(key, tab);
        app.shell.add(tab, 'main');
      }
      app.shell.activateById(tab.id);
    };
    const snippets: ISnippetActions = {
      copy: code => Clipboard.copyToSystem(code),
      insert: code => {
        const panel = notebooks?.currentWidget;
        if (!panel) {
          return false;
        }
        NotebookActions.insertBelow(panel.content);
        panel.content.activeCell?.model.sharedModel.setSource(code);
        app.shell.activateById(panel.id);
        return true;
      }
    };
    const openArtifact = (runId: number, name: string, size: number | null = null) =>
      show(`artifact-${runId}-${encodeURIComponent(name)}`, () => new ArtifactView(runId, name, size));
    const openNotebook = (path: string) => void app.commands.execute('docmanager:open', { path });
    const openRun = (runId: number) =>
      show(`run-${runId}`, () => new RunDetail(runId, snippets, openArtifact));
    const compare = (runIds: number[]) => {
      const ids = [...runIds].sort((a, b) => a - b);
      show(`compare-${ids.join('-')}`, () => new CompareView(ids));
    };

    const sidebar = new MlopsSidebar({ openRun, compare, openArtifact, openNotebook }, snippets);
    app.shell.add(sidebar, 'left', { rank: 650 });
    if (notebooks) {
      const follow = () => sidebar.setNotebook(notebooks.currentWidget?.context.path ?? null);
      notebooks.currentChanged.connect(follow);
      follow();
    }
    void labShell;

    app.commands.addCommand(CommandIDs.showPanel, {
      label: 'MLOps: Show Runs and Models',
      execute: () => app.shell.activateById(sidebar.id)
    });
    app.commands.addCommand(CommandIDs.openRun, {
      label: 'MLOps: Open Run…',
      execute: async args => {
        let runId = Number(args.runId);
        if (!Number.isInteger(runId) || runId < 1) {
          const answer = await InputDialog.getNumber({ title: 'Open run number' });
          if (!answer.button.accept || answer.value === null) {
            return;
          }
          runId = answer.value;
        }
        openRun(runId);
      }
    });
    app.commands.addCommand(CommandIDs.compare, {
      label: 'MLOps: Compare Runs…',
      execute: async args => {
        let ids = Array.isArray(args.runIds) ? (args.runIds as number[]) : [];
        if (ids.length < 2) {
          const answer = await InputDialog.getText({
            title: 'Compare runs (numbers separated by spaces)',
            placeholder: '10 12 14'
          });
          if (!answer.button.accept || !answer.value) {
            return;
          }
          ids = answer.value.split(/[\s,]+/).filter(Boolean).map(Number);
        }
        if (ids.length >= 2 && ids.every(id => Number.isInteger(id) && id > 0)) {
          compare(ids);
        }
      }
    });
    if (palette) {
      for (const command of Object.values(CommandIDs)) {
        palette.addItem({ command, category: CATEGORY });
      }
    }
  }
};

export default plugin;
