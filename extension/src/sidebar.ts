import { LabIcon } from '@jupyterlab/ui-components';
import { Panel, Widget } from '@lumino/widgets';

import { DatasetsList } from './datasetsList';
import { el } from './dom';
import { ModelsList } from './modelsList';
import { IPipelineOpeners, PipelinesList } from './pipelinesList';
import { RunsList } from './runsList';
import { ISnippetActions } from './snippets';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" ' +
  'd="M3 3h2v16h16v2H3zm4 12 4-5 3 3 5-7 1.6 1.2-6.4 9-3-3-2.6 3.3z"/></svg>';

export const mlopsIcon = new LabIcon({ name: 'jupyter-mlops:icon', svgstr: ICON_SVG });

/** What the sidebar asks the workspace to open in the main area. */
export interface IOpeners extends IPipelineOpeners {
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
    this.title.caption = 'MLOps runs, models, datasets and pipelines';
    const tabs = new Widget({ node: el('div', { cls: 'jp-mlops-tabs', attrs: { role: 'tablist' } }) });
    this.runs = new RunsList(openers.openRun, openers.compare);
    const models = new ModelsList(snippets);
    const datasets = new DatasetsList(openers.openRun);
    const pipelines = new PipelinesList(openers);
    this.views = [
      { name: 'Runs', widget: this.runs, refresh: null },
      { name: 'Models', widget: models, refresh: () => models.refresh() },
      { name: 'Datasets', widget: datasets, refresh: () => datasets.refresh() },
      { name: 'Pipelines', widget: pipelines, refresh: () => pipelines.refresh() }
    ].map(view => ({ ...view, button: this.tab(view.name, () => this.showTab(view.name)) }));
    tabs.node.append(...this.views.map(view => view.button));
    this.addWidget(tabs);
    for (const view of this.views) {
      this.addWidget(view.widget);
    }
    this.showTab('Runs');
  }

  setNotebook(path: string | null): void {
    this.runs.setNotebook(path);
  }

  private tab(label: string, onClick: () => void): HTMLButtonElement {
    const button = el('button', { cls: 'jp-mlops-tab', text: label, attrs: { type: 'button', role: 'tab' } });
    button.addEventListener('click', onClick);
    return button;
  }

  /** Show one view; Models and Datasets are read afresh each time they are shown. */
  private showTab(name: string): void {
    for (const view of this.views) {
      const shown = view.name === name;
      view.button.setAttribute('aria-selected', String(shown));
      view.widget.setHidden(!shown);
      if (shown && view.refresh) {
        void view.refresh();
      }
    }
  }

  private readonly runs: RunsList;
  private readonly views: {
    name: string;
    widget: Widget;
    refresh: (() => Promise<void>) | null;
    button: HTMLButtonElement;
  }[];
}
