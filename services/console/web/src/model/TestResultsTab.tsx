// "View test results": every test image with its ground truth and the model's prediction side by side,
// TP/FP/FN badges, filters by label and by outcome (with counts), 50 images a page (ListTestResults).

import { useCallback, useState } from "react";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { call, imageUrl } from "../api";
import type { ProjectVersionDescription } from "../types";
import { Button, Empty, ErrorAlert, Modal, Pager, Spinner } from "../ui/components";
import { BoxOverlay } from "./BoxOverlay";
import type { OverlayBox } from "./BoxOverlay";
import { useEvaluation } from "./queries";
import type { Outcome, TestPrediction, TestResult, TestResultsPage } from "./types";
import { SHOWN_OUTCOMES } from "./types";
import "./model.css";

const PAGE_SIZE = 50;
const SHORT: Record<string, string> = { TRUE_POSITIVE: "TP", FALSE_POSITIVE: "FP", FALSE_NEGATIVE: "FN", TRUE_NEGATIVE: "TN" };
const TONE: Record<string, OverlayBox["tone"]> = { TRUE_POSITIVE: "tp", FALSE_POSITIVE: "fp", FALSE_NEGATIVE: "fn", TRUE_NEGATIVE: "tn" };

function filterBody(arn: string, label: string, outcome: Outcome | "") {
  return {
    ProjectVersionArn: arn,
    ...(label ? { Labels: [label] } : {}),
    ...(outcome ? { Outcome: outcome } : {}),
  };
}

export function TestResultsTab({ version }: { version: ProjectVersionDescription }) {
  const arn = version.ProjectVersionArn;
  const evaluation = useEvaluation(version);
  const [label, setLabel] = useState("");
  const [outcome, setOutcome] = useState<Outcome | "">("");
  const [tokens, setTokens] = useState<(string | undefined)[]>([undefined]);
  const [opened, setOpened] = useState<TestResult | null>(null);
  const token = tokens[tokens.length - 1];
  const close = useCallback(() => setOpened(null), []);
  const page = useQuery({
    queryKey: ["test-results", arn, label, outcome, token],
    placeholderData: keepPreviousData,
    staleTime: Infinity,
    queryFn: () =>
      call<TestResultsPage>("ListTestResults", {
        ...filterBody(arn, label, outcome),
        MaxResults: PAGE_SIZE,
        ...(token ? { NextToken: token } : {}),
      }),
  });
  // How many images have each outcome (under the label filter): one 1-item page per outcome.
  const counts = useQuery({
    queryKey: ["test-result-counts", arn, label],
    staleTime: Infinity,
    queryFn: async () => {
      const kinds: (Outcome | "")[] = ["", ...SHOWN_OUTCOMES.map((o) => o.id)];
      const totals = await Promise.all(
        kinds.map((kind) =>
          call<TestResultsPage>("ListTestResults", { ...filterBody(arn, label, kind), MaxResults: 1 }).then((p) => p.TotalCount),
        ),
      );
      return Object.fromEntries(kinds.map((kind, i) => [kind, totals[i]])) as Record<string, number>;
    },
  });
  const labels = evaluation.data?.Summary?.EvaluationDetails?.Labels ?? [];
  const choose = (change: () => void) => {
    change();
    setTokens([undefined]);
  };
  const results = page.data?.TestResults ?? [];
  const first = (tokens.length - 1) * PAGE_SIZE + 1;
  return (
    <section className="panel">
      <div className="results-filters" data-testid="results-filters">
        <label className="inline-field">
          <span>Label</span>
          <select value={label} onChange={(event) => choose(() => setLabel(event.target.value))} data-testid="results-label">
            <option value="">All labels</option>
            {labels.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </label>
        <div className="segmented" role="group" aria-label="Outcome">
          <OutcomeButton id="" text="All images" count={counts.data?.[""]} active={outcome} onPick={(o) => choose(() => setOutcome(o))} />
          {SHOWN_OUTCOMES.map((o) => (
            <OutcomeButton
              key={o.id}
              id={o.id}
              text={o.label}
              short={o.short}
              count={counts.data?.[o.id]}
              active={outcome}
              onPick={(picked) => choose(() => setOutcome(picked))}
            />
          ))}
        </div>
        <span className="results-count muted" data-testid="results-total">
          {page.data
            ? page.data.TotalCount === 0
              ? "No images"
              : `Images ${first}–${first + results.length - 1} of ${page.data.TotalCount}`
            : ""}
        </span>
      </div>
      <ErrorAlert error={page.error ?? counts.error} />
      {page.isPending ? (
        <Spinner label="Loading the test results" />
      ) : results.length === 0 && !page.error ? (
        <Empty>No test image matches the filters.</Empty>
      ) : (
        <div className={page.isPlaceholderData ? "results-grid results-stale" : "results-grid"} data-testid="results-grid">
          {results.map((result) => (
            <ResultCard key={result.SourceRef} result={result} onOpen={() => setOpened(result)} />
          ))}
        </div>
      )}
      <Pager
        page={tokens.length}
        hasNext={Boolean(page.data?.NextToken)}
        busy={page.isFetching}
        onPrevious={() => setTokens((t) => t.slice(0, -1))}
        onNext={() => setTokens((t) => [...t, page.data?.NextToken])}
      />
      {opened && <LargeView result={opened} onClose={close} />}
    </section>
  );
}

function OutcomeButton({
  id,
  text,
  short,
  count,
  active,
  onPick,
}: {
  id: Outcome | "";
  text: string;
  short?: string;
  count?: number;
  active: Outcome | "";
  onPick: (id: Outcome | "") => void;
}) {
  return (
    <button
      className={active === id ? "segment segment-active" : "segment"}
      aria-pressed={active === id}
      onClick={() => onPick(id)}
      data-testid={`outcome-${short ?? "all"}`}
    >
      {short && <span className={`outcome-dot outcome-${short.toLowerCase()}`} aria-hidden="true" />}
      {text}
      <span className="segment-count" data-testid={`count-${short ?? "all"}`}>
        {count ?? "…"}
      </span>
    </button>
  );
}

/** The name of the file a source-ref points at. */
function fileName(sourceRef: string): string {
  return sourceRef.slice(sourceRef.lastIndexOf("/") + 1) || sourceRef;
}

/** How many ground-truth boxes of `name` the image has. */
function boxCount(result: TestResult, name: string): number {
  return result.GroundTruth.filter((g) => g.Name === name && g.BoundingBox).length;
}

function shownPredictions(result: TestResult): TestPrediction[] {
  return result.Predictions.filter((p) => p.Outcome && p.Outcome !== "TRUE_NEGATIVE");
}

function truthBoxes(result: TestResult): OverlayBox[] {
  return result.GroundTruth.filter((g) => g.BoundingBox).map((g) => ({ box: g.BoundingBox!, label: g.Name, tone: "truth" }));
}

function predictionBoxes(result: TestResult): OverlayBox[] {
  return shownPredictions(result)
    .filter((p) => p.BoundingBox)
    .map((p) => ({
      box: p.BoundingBox!,
      label: p.Outcome === "FALSE_NEGATIVE" ? `${p.Name} (missed)` : `${p.Name} ${p.Confidence.toFixed(0)}%`,
      tone: TONE[p.Outcome ?? ""] ?? "tp",
    }));
}

export function OutcomeBadge({ outcome }: { outcome?: Outcome }) {
  const short = SHORT[outcome ?? ""];
  if (!short) return null;
  const label = SHOWN_OUTCOMES.find((o) => o.id === outcome)?.label ?? "True negative";
  return (
    <span className={`outcome-badge outcome-${short.toLowerCase()}`} title={label} data-outcome={short}>
      {short}
    </span>
  );
}

/** The evaluation records of an image: outcome, label, confidence ("missed" for a false negative). */
function PredictionList({ predictions }: { predictions: TestPrediction[] }) {
  return (
    <ul className="prediction-list" data-testid="predictions">
      {predictions.map((p, index) => (
        <li key={index} data-outcome={SHORT[p.Outcome ?? ""]}>
          <OutcomeBadge outcome={p.Outcome} />
          <span className="prediction-name" title={p.Name}>
            {p.Name}
          </span>
          <span className="muted">
            {p.Outcome === "FALSE_NEGATIVE"
              ? p.Confidence > 0
                ? `missed (best ${p.Confidence.toFixed(1)}%)`
                : "missed"
              : `${p.Confidence.toFixed(1)}%`}
          </span>
        </li>
      ))}
      {predictions.length === 0 && <li className="muted">nothing predicted</li>}
    </ul>
  );
}

function ResultCard({ result, onOpen }: { result: TestResult; onOpen: () => void }) {
  const predictions = shownPredictions(result);
  const tally = SHOWN_OUTCOMES.map((o) => ({ ...o, n: predictions.filter((p) => p.Outcome === o.id).length })).filter((o) => o.n > 0);
  const src = result.Image ? imageUrl({ key: result.Image.Name }, 512) : undefined;
  const name = fileName(result.SourceRef);
  return (
    <article className="result-card" data-testid="test-result" data-outcomes={tally.map((t) => t.short).join(" ")} data-source-ref={result.SourceRef}>
      <header className="result-head">
        <span className="result-name" title={result.SourceRef}>
          {name}
        </span>
        <span className="result-tally">
          {tally.map((t) => (
            <span key={t.id} className={`outcome-badge outcome-${t.short.toLowerCase()}`} title={t.label} data-outcome={t.short}>
              {t.short}
              {t.n > 1 ? ` ×${t.n}` : ""}
            </span>
          ))}
        </span>
      </header>
      <div className="result-pair">
        <figure className="result-side">
          <figcaption>Ground truth</figcaption>
          <ImageButton src={src} result={result} boxes={truthBoxes(result)} alt={`${name}, ground truth`} onOpen={onOpen} testId="truth-image" />
          <ul className="chip-list" data-testid="truth-labels">
            {result.GroundTruth.filter((g, i, all) => all.findIndex((x) => x.Name === g.Name) === i).map((g) => (
              <li key={g.Name} className="chip chip-truth">
                {g.Name}
                {boxCount(result, g.Name) > 1 && ` ×${boxCount(result, g.Name)}`}
              </li>
            ))}
            {result.GroundTruth.length === 0 && <li className="muted">no label</li>}
          </ul>
        </figure>
        <figure className="result-side">
          <figcaption>Prediction</figcaption>
          <ImageButton src={src} result={result} boxes={predictionBoxes(result)} alt={`${name}, prediction`} onOpen={onOpen} testId="prediction-image" />
          <PredictionList predictions={predictions} />
        </figure>
      </div>
    </article>
  );
}

function ImageButton({
  src,
  result,
  boxes,
  alt,
  onOpen,
  testId,
}: {
  src?: string;
  result: TestResult;
  boxes: OverlayBox[];
  alt: string;
  onOpen: () => void;
  testId: string;
}) {
  if (!src) return <div className="image-missing">Image not available</div>;
  return (
    <button className="image-button" onClick={onOpen} aria-label={`Open ${alt} larger`}>
      <BoxOverlay src={src} alt={alt} width={result.Width || undefined} height={result.Height || undefined} boxes={boxes} testId={testId} showLabels={false} />
    </button>
  );
}

function LargeView({ result, onClose }: { result: TestResult; onClose: () => void }) {
  const src = result.Image ? imageUrl({ key: result.Image.Name }, 0) : undefined;
  const predictions = shownPredictions(result);
  return (
    <Modal title={fileName(result.SourceRef)} onClose={onClose} wide>
      <p className="muted result-ref">{result.SourceRef}</p>
      <div className="result-pair result-pair-large">
        <figure className="result-side">
          <figcaption>Ground truth</figcaption>
          {src && <BoxOverlay src={src} alt="Ground truth" width={result.Width || undefined} height={result.Height || undefined} boxes={truthBoxes(result)} lazy={false} />}
          <ul className="chip-list">
            {result.GroundTruth.map((g, index) => (
              <li key={index} className="chip chip-truth">
                {g.Name}
              </li>
            ))}
          </ul>
        </figure>
        <figure className="result-side">
          <figcaption>Prediction</figcaption>
          {src && <BoxOverlay src={src} alt="Prediction" width={result.Width || undefined} height={result.Height || undefined} boxes={predictionBoxes(result)} lazy={false} />}
          <PredictionList predictions={predictions} />
        </figure>
      </div>
      <div className="modal-actions">
        <Button onClick={onClose}>Close</Button>
      </div>
    </Modal>
  );
}
