// "API code": ready-made commands and code to start the model, analyze an image and stop it, with this
// model's ARNs and the console's region filled in (AWS CLI, Python with boto3, and our own CLI).

import { useState } from "react";
import type { ProjectVersionDescription } from "../types";
import { versionName } from "../types";
import { CopyBlock, Tabs } from "../ui/components";
import { useSession } from "./queries";
import "./model.css";

type Tool = "aws" | "python" | "customlabels";

/** The edge's address is the user's CUSTOMLABELS_EDGE_ENDPOINT; the console does not know it. */
export const EDGE_PLACEHOLDER = "http://127.0.0.1:8080";

export function snippets(versionArn: string, projectArn: string, region: string, units: number) {
  const name = versionName(versionArn);
  const aws = (command: string, args: string[]) =>
    [`aws rekognition ${command}`, ...args, `--region ${region}`, `--endpoint-url ${EDGE_PLACEHOLDER}`].join(" \\\n  ");
  const ours = (command: string, args: string[]) => [`customlabels ${command}`, ...args].join(" \\\n  ");
  return {
    aws: [
      {
        label: "Start the model",
        text: aws("start-project-version", [`--project-version-arn "${versionArn}"`, `--min-inference-units ${units}`]),
      },
      {
        label: "Analyze an image",
        text: aws("detect-custom-labels", [`--project-version-arn "${versionArn}"`, `--image-bytes fileb://image.jpg`]),
      },
      {
        label: "Stop the model",
        text: aws("stop-project-version", [`--project-version-arn "${versionArn}"`]),
      },
    ],
    python: [
      {
        label: "Start the model",
        text: `import boto3

# endpoint_url: your customlabels edge (CUSTOMLABELS_EDGE_ENDPOINT in .data/stack.env), not AWS.
rekognition = boto3.client("rekognition", region_name="${region}", endpoint_url="${EDGE_PLACEHOLDER}")

project_arn = "${projectArn}"
model_arn = "${versionArn}"

rekognition.start_project_version(ProjectVersionArn=model_arn, MinInferenceUnits=${units})
rekognition.get_waiter("project_version_running").wait(ProjectArn=project_arn, VersionNames=["${name}"])
print("running")`,
      },
      {
        label: "Analyze an image",
        text: `import boto3

rekognition = boto3.client("rekognition", region_name="${region}", endpoint_url="${EDGE_PLACEHOLDER}")
model_arn = "${versionArn}"

with open("image.jpg", "rb") as image:
    # Without MinConfidence each label is cut at its assumed threshold from the evaluation.
    response = rekognition.detect_custom_labels(ProjectVersionArn=model_arn, Image={"Bytes": image.read()})
for label in response["CustomLabels"]:
    box = label.get("Geometry", {}).get("BoundingBox")
    print(label["Name"], round(label["Confidence"], 1), box or "")`,
      },
      {
        label: "Stop the model",
        text: `import boto3

rekognition = boto3.client("rekognition", region_name="${region}", endpoint_url="${EDGE_PLACEHOLDER}")
rekognition.stop_project_version(ProjectVersionArn="${versionArn}")`,
      },
    ],
    customlabels: [
      {
        label: "Start the model",
        text: ours("start-project-version", [`--project-version-arn "${versionArn}"`, `--min-inference-units ${units}`]),
      },
      {
        label: "Wait until it runs",
        text: ours("describe-project-versions", [`--project-arn "${projectArn}"`, `--version-names "${name}"`]),
      },
      {
        label: "Analyze an image",
        text: ours("detect-custom-labels", [`--project-version-arn "${versionArn}"`, `--image-bytes fileb://image.jpg`]),
      },
      {
        label: "Stop the model",
        text: ours("stop-project-version", [`--project-version-arn "${versionArn}"`]),
      },
    ],
  } satisfies Record<Tool, { label: string; text: string }[]>;
}

export function ApiCode({ version, projectArn }: { version: ProjectVersionDescription; projectArn: string }) {
  const session = useSession();
  const [tool, setTool] = useState<Tool>("aws");
  const region = session.data?.Region ?? "local";
  const blocks = snippets(version.ProjectVersionArn, projectArn, region, version.MinInferenceUnits ?? 1)[tool];
  return (
    <section className="panel" data-testid="api-code">
      <h2>API code</h2>
      <p className="muted">
        Use the model from your own code. The edge speaks Rekognition's protocol, so the AWS CLI and boto3 work with its
        endpoint (<code>{EDGE_PLACEHOLDER}</code> here is a placeholder: use your <code>CUSTOMLABELS_EDGE_ENDPOINT</code>) and
        an access key of the edge.
      </p>
      <Tabs
        tabs={[
          { id: "aws", label: "AWS CLI" },
          { id: "python", label: "Python (boto3)" },
          { id: "customlabels", label: "customlabels CLI" },
        ]}
        active={tool}
        onChange={setTool}
      />
      <div data-testid={`snippets-${tool}`}>
        {blocks.map((block) => (
          <CopyBlock key={block.label} label={block.label} text={block.text} />
        ))}
      </div>
    </section>
  );
}
