"""Alert -> revert: a branch that `git revert`s the latest release commit, and its PR body.

Argo CD refuses a rollback while auto-sync is on (argo-cd#2441), so the rollback is a revert
commit merged to the synced branch. This room prepares it without touching that branch or the
user's work tree: `plan` finds the release commit and the release it replaced (Git objects
only), `branch` makes the revert commit in a temporary worktree and creates the branch,
`prbody` writes the pull request's Markdown, `alerts` reads Alertmanager's webhook payload and
`server` is the webhook receiver behind `mlgitops revert serve`.
"""
