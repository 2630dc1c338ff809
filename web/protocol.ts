/**
 * The messages between the page (web/main.ts) and its worker (web/worker.ts). The worker does everything that
 * touches a scan or the GPU: reading, both stages, the report and the output files; the page shows what it posts.
 * Every message is plain data (structured clone); file bytes travel as transferred ArrayBuffers.
 * @module
 */

/** A file the user gave, with its path inside a dropped or picked folder ('' parts when it came alone). */
export interface InputFile {
  /** Relative path ('study/series1/IM0001'), or the file name. */
  path: string;
  file: Blob;
}

/** Page -> worker. */
export type ToWorker =
  /** Analyse these files (a NIfTI file, DICOM files or a DICOM folder); `series` picks a series by key. */
  | { type: 'analyze'; id: number; files: InputFile[]; series?: string; weights?: InputFile }
  /** Analyse the bundled synthetic sample study. */
  | { type: 'sample'; id: number; weights?: InputFile }
  /** Abort the run with this id (a no-op when it has ended). */
  | { type: 'cancel'; id: number }
  /** Acquire the GPU now and report the adapter (sent once at start). */
  | { type: 'probe' };

/** What went wrong, for the page's wording. */
export type ProblemKind =
  | 'no-webgpu'
  | 'gpu-lost'
  | 'too-large'
  | 'not-a-scan'
  | 'unsupported'
  | 'unusable'
  | 'empty'
  | 'weights'
  | 'cancelled'
  | 'internal';

/** One series found in a DICOM folder, for the list to pick another. */
export interface SeriesInfo {
  key: string;
  uid: string;
  modality: string;
  description: string;
  slices: number;
  rows: number;
  columns: number;
  isCT: boolean;
  splitReason?: string;
}

/** A file made by the same code as the CLI's outputs (makeOutputFiles). */
export interface OutputFile {
  name: string;
  bytes: Uint8Array;
}

/** Worker -> page. */
export type FromWorker =
  | { type: 'gpu'; adapter: string; isSoftware: boolean; maxBufferMiB: number }
  | { type: 'progress'; id: number; stage: string; done: number; total: number; slicesPerSec: number | null }
  | { type: 'series'; id: number; series: SeriesInfo[]; chosen: string; skipped: number; notes: string[] }
  | {
      type: 'result';
      id: number;
      /** report.json, parsed. */
      report: unknown;
      /** The CT as a NIfTI written by our own writer (for the viewer). */
      ct: Uint8Array;
      /**
       * The lung mask for the viewer: the same voxels as lung_mask.nii.gz but without the NIfTI label intent, which
       * makes NiiVue draw a uint8 volume through its atlas shader and a label table we do not give it (nothing shows).
       */
      lung: Uint8Array;
      /** report.json, lung_mask.nii.gz, infection.nii.gz, the contact sheet and the overlays. */
      files: OutputFile[];
      /** What was analysed, one line. */
      input: string;
      seconds: number;
    }
  | { type: 'error'; id: number | null; kind: ProblemKind; message: string; detail?: string };
