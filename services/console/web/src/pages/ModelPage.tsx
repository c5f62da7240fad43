// A model version: live status and progress, then the Evaluation, Test results, Use model and Tags tabs
// (`?tab=evaluation|results|use|tags`), and Delete model.

import { Link, useParams, useSearchParams } from "react-router";
import { PageHeader } from "../layout";
import { DeleteModelButton } from "../model/DeleteModel";
import { EvaluationTab } from "../model/EvaluationTab";
import { ModelSummary } from "../model/ModelSummary";
import { TagsTab } from "../model/TagsTab";
import { TestResultsTab } from "../model/TestResultsTab";
import { UseModelTab } from "../model/UseModelTab";
import { evaluated, useModel } from "../model/queries";
import { Alert, ErrorAlert, Spinner, Tabs } from "../ui/components";
import "../model/model.css";

type TabId = "evaluation" | "results" | "use" | "tags";
const TAB_IDS: TabId[] = ["evaluation", "results", "use", "tags"];

export function ModelPage() {
  const { project = "", version = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const model = useModel(project, version);
  const requested = params.get("tab") as TabId | null;
  const tab: TabId = requested && TAB_IDS.includes(requested) ? requested : "evaluation";
  const projectPath = `/projects/${encodeURIComponent(project)}`;
  const crumbs = [
    { label: "Projects", to: "/projects" },
    { label: project, to: projectPath },
    { label: "Models", to: projectPath },
    { label: version },
  ];
  if (model.project.error) return <ErrorAlert error={model.project.error} />;
  if (model.versions.error) return <ErrorAlert error={model.versions.error} />;
  if (model.missing) {
    return (
      <>
        <PageHeader crumbs={crumbs} title={version} />
        <Alert kind="warning" title="Model not found">
          The project has no model version {version} (it may have been deleted). <Link to={projectPath}>Back to the project</Link>
        </Alert>
      </>
    );
  }
  if (!model.version || !model.project.data) return <Spinner label="Loading the model" />;
  const current = model.version;
  const projectArn = model.project.data.ProjectArn;
  const trained = evaluated(current) && !["TRAINING_FAILED", "COPYING_FAILED"].includes(current.Status);
  const tabs: { id: TabId; label: string }[] = [
    { id: "evaluation", label: "Evaluation" },
    ...(trained ? [{ id: "results" as TabId, label: "Test results" }] : []),
    ...(trained ? [{ id: "use" as TabId, label: "Use model" }] : []),
    { id: "tags", label: "Tags" },
  ];
  const active = tabs.some((t) => t.id === tab) ? tab : "evaluation";
  return (
    <>
      <PageHeader
        crumbs={crumbs}
        title={version}
        actions={<DeleteModelButton version={current} projectArn={projectArn} projectPath={projectPath} />}
      />
      <ModelSummary version={current} />
      <Tabs
        tabs={tabs}
        active={active}
        onChange={(id) =>
          setParams(
            (p) => {
              const next = new URLSearchParams(p);
              next.set("tab", id);
              return next;
            },
            { replace: true },
          )
        }
      />
      {active === "evaluation" && <EvaluationTab version={current} />}
      {active === "results" && <TestResultsTab version={current} />}
      {active === "use" && <UseModelTab version={current} projectArn={projectArn} />}
      {active === "tags" && <TagsTab arn={current.ProjectVersionArn} />}
    </>
  );
}
