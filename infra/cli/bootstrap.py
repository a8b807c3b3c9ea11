"""One-time AWS account setup for the pipeline: state bucket, KMS key, GitHub OIDC provider and roles.

Idempotent: running it again changes nothing that is already right.

Examples:

\b
  scripts/bootstrap --github-repo my-org/celery-cluster --region eu-west-1
  scripts/bootstrap --github-repo my-org/celery-cluster --region eu-west-1 \\
      --environment dev --profile admin

Exit codes:

\b
  0  the account is set up (the roles' ARNs are printed)
  1  an AWS call failed
"""

from __future__ import annotations

import boto3
import typer

from infra.cli.account_setup import bootstrap
from infra.cli.entry import script_app
from infra.cli.fit import output_console, print_pairs

app = script_app("bootstrap", __doc__)


@app.command(help=__doc__)
def main(
    github_repo: str = typer.Option(..., help="ORG/REPO whose workflows may assume the roles"),
    region: str = typer.Option(..., help="AWS region for the state bucket and KMS key"),
    environment: list[str] = typer.Option(["dev", "staging", "prod"], help="GitHub environments (repeatable)"),
    profile: str | None = typer.Option(None, help="AWS profile with administrator rights in the account"),
) -> None:
    console = output_console()
    session = boto3.Session(profile_name=profile, region_name=region)
    try:
        result = bootstrap(session, repo=github_repo, environments=environment)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    pairs = [
        ("PULUMI_BACKEND_URL (variable)", result.backend_url),
        ("AWS_REGION (variable)", region),
        ("AWS_PREVIEW_ROLE_ARN (repository variable)", result.preview_role_arn),
        *(
            (f"AWS_DEPLOY_ROLE_ARN (variable of environment {env})", arn)
            for env, arn in result.deploy_role_arns.items()
        ),
        ("secrets provider (pulumi stack init --secrets-provider)", result.secrets_provider),
    ]
    print_pairs(console, "Store these as GitHub Actions variables / use them locally", pairs)


if __name__ == "__main__":
    app(prog_name="scripts/bootstrap")
