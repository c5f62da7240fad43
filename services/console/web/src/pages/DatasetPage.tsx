// A project's training or test dataset: the Training / Test tabs around the gallery and labeling
// (src/dataset/DatasetView.tsx). Switching tabs is a navigation, so unsaved changes are asked about.

import { Link, useNavigate, useParams } from "react-router";
import { useProject } from "../hooks";
import { PageHeader } from "../layout";
import type { DatasetType } from "../types";
import { Empty, ErrorAlert, Spinner, Tabs } from "../ui/components";
import { DatasetView } from "../dataset/DatasetView";

type Tab = "train" | "test";

export function DatasetPage() {
  const { project: name = "", type = "train" } = useParams();
  const navigate = useNavigate();
  const project = useProject(name);
  const base = `/projects/${encodeURIComponent(name)}`;
  const tab: Tab = type === "test" ? "test" : "train";
  const datasetType: DatasetType = tab === "test" ? "TEST" : "TRAIN";
  const title = tab === "test" ? "Test dataset" : "Training dataset";
  const header = (
    <PageHeader
      crumbs={[{ label: "Projects", to: "/projects" }, { label: name, to: base }, { label: title }]}
      title={title}
    />
  );
  if (project.isPending) return <Spinner label="Loading the project" />;
  if (project.error || !project.data) return <ErrorAlert error={project.error} />;
  if (type !== "train" && type !== "test") return <ErrorAlert error={new Error(`There is no ${type} dataset; use train or test.`)} />;
  const dataset = project.data.Datasets.find((d) => d.DatasetType === datasetType);
  return (
    <>
      {header}
      <Tabs<Tab>
        tabs={[
          { id: "train", label: "Training" },
          { id: "test", label: "Test" },
        ]}
        active={tab}
        onChange={(id) => navigate(`${base}/datasets/${id}`)}
      />
      {dataset ? (
        <DatasetView key={dataset.DatasetArn} arn={dataset.DatasetArn} />
      ) : (
        <section className="panel">
          <Empty>
            This project has no {tab === "test" ? "test" : "training"} dataset.{" "}
            <Link to={`${base}/datasets/new?type=${datasetType}`} data-testid="create-missing">
              Create the {tab === "test" ? "test" : "training"} dataset
            </Link>
            {tab === "test" && " (or let training split 20% of the training images off)"}.
          </Empty>
        </section>
      )}
    </>
  );
}
