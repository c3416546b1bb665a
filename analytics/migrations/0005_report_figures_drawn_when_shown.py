"""A run's figures move to rows of their own, so each can be drawn when first shown and stored alone."""

from django.db import migrations, models
import django.db.models.deletion


def figures_to_rows(apps, schema_editor):
    ReportRun = apps.get_model("analytics", "ReportRun")
    ReportFigure = apps.get_model("analytics", "ReportFigure")
    for run in ReportRun.objects.only("pk", "figures").iterator(chunk_size=50):
        ReportFigure.objects.bulk_create(
            ReportFigure(run_id=run.pk, key=key, svg=svg) for key, svg in (run.figures or {}).items()
        )


def rows_to_figures(apps, schema_editor):
    """Back: drawn figures return to the run; a run with a figure not drawn yet is dropped (a cache)."""
    ReportRun = apps.get_model("analytics", "ReportRun")
    ReportFigure = apps.get_model("analytics", "ReportFigure")
    ReportRun.objects.filter(figure_set__svg="").delete()
    for run in ReportRun.objects.only("pk").iterator(chunk_size=50):
        run.figures = dict(ReportFigure.objects.filter(run_id=run.pk).values_list("key", "svg"))
        run.save(update_fields=["figures"])


class Migration(migrations.Migration):
    dependencies = [("analytics", "0004_fingerprint_per_study_and_site")]

    operations = [
        migrations.CreateModel(
            name="ReportFigure",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(help_text="<section>.<figure>, as in the run's numbers.", max_length=200)),
                ("svg", models.TextField(blank=True, help_text="Empty until the figure is drawn.")),
                (
                    "call",
                    models.TextField(
                        blank=True,
                        editable=False,
                        help_text="The plot call, pickled, compressed and signed; emptied once drawn.",
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="figure_set",
                        to="analytics.reportrun",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("run", "key"), name="report_figure_key_unique_per_run")
                ]
            },
        ),
        migrations.RunPython(figures_to_rows, rows_to_figures),
        migrations.RemoveField(model_name="reportrun", name="figures"),
    ]
