import { LabIcon } from '@jupyterlab/ui-components';
import { Panel, Widget } from '@lumino/widgets';

import { el } from './dom';
import { ModelsList } from './modelsList';
import { RunsList } from './runsList';
import { ISnippetActions } from './snippets';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" ' +
  'd="M3 3h2v16h16v2H3zm4 12 4-5 3 3 5-7 1.6 1.2-6.4 9-3-3-2.6 3.3z"/></svg>';

export const mlopsIcon = new LabIcon({ name: 'jupyter-mlops:icon', svgstr: ICON_SVG });

/** What the sidebar asks the workspace to open in the main area. */
export interface IOpeners {
  openRun: (runId: number) => void;
  compare: (runIds: number[]) => void;
}

/**
 * The left sidebar "MLOps": compact lists of Runs and Models. A run's detail and a
 * compare open as main-area tabs (`IOpeners`), never squeezed into the sidebar.
 */
export class MlopsSidebar extends Panel {
  constructor(openers: IOpeners, snippets: ISnippetActions) {
    super();
    this.id = 'jupyter-mlops-sidebar';
    this.addClass('jp-mlops-sidebar');
    this.title.icon = mlopsIcon;
    this.title.caption = 'MLOps runs and models';
    const tabs = new Widget({ node: el('div', { cls: 'jp-mlops-tabs', attrs: { role: 'tablist' } }) });
    this.runsTab = this.tab('Runs', () => this.showTab('runs'));
    this.modelsTab = this.tab('Models', () => this.showTab('models'));
    tabs.node.append(this.runsTab, this.modelsTab);
    this.runs = new RunsList(openers.openRun, openers.compare);
    this.models = new ModelsList(snippets);
    this.addWidget(tabs);
    this.addWidget(this.runs);
    this.addWidget(this.models);
    this.showTab('runs');
  }

  setNotebook(path: string | null): void {
    this.runs.setNotebook(path);
  }

  private tab(label: string, onClick: () => void): HTMLButtonElement {
    const button = el('button', { cls: 'jp-mlops-tab', text: label, attrs: { type: 'button', role: 'tab' } });
    button.addEventListener('click', onClick);
    return button;
  }

  private showTab(name: 'runs' | 'models'): void {
    const runs = name === 'runs';
    this.runsTab.setAttribute('aria-selected', String(runs));
    this.modelsTab.setAttribute('aria-selected', String(!runs));
    this.runs.setHidden(!runs);
    this.models.setHidden(runs);
    if (!runs) {
      void this.models.refresh();
    }
  }

  private readonly runsTab: HTMLButtonElement;
  private readonly modelsTab: HTMLButtonElement;
  private readonly runs: RunsList;
  private readonly models: ModelsList;
}
