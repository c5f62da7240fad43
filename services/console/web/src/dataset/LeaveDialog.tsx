// The question asked before unsaved work would be lost: stay, or leave and discard it.

import { Button, Modal } from "../ui/components";

export function LeaveDialog({
  message,
  onStay,
  onLeave,
  leaveLabel = "Leave and discard",
}: {
  message: string;
  onStay: () => void;
  onLeave: () => void;
  leaveLabel?: string;
}) {
  return (
    <Modal
      title="Unsaved changes"
      onClose={onStay}
      footer={
        <>
          <Button variant="primary" onClick={onStay} data-testid="leave-stay">
            Stay
          </Button>
          <Button variant="danger" onClick={onLeave} data-testid="leave-discard">
            {leaveLabel}
          </Button>
        </>
      }
    >
      <p data-testid="leave-message">{message}</p>
    </Modal>
  );
}

/** "Leave and discard 3 unsaved changes?" */
export function discardMessage(count: number): string {
  return `Leave and discard ${count} unsaved change${count === 1 ? "" : "s"}?`;
}
