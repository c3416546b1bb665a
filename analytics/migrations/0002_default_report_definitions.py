"""Give every study that already exists its default report definition (new studies get one on creation)."""

from django.db import migrations


def create_defaults(apps, schema_editor):
    Study = apps.get_model("registry", "Study")
    ReportDefinition = apps.get_model("analytics", "ReportDefinition")
    for study in Study.objects.exclude(report_definitions__is_default=True):
        ReportDefinition.objects.create(
            study=study,
            name="All patients",
            description="The seed paper's analysis over every patient of the study at the sites you report on.",
            is_default=True,
        )


class Migration(migrations.Migration):
    dependencies = [("analytics", "0001_report_definitions_and_runs")]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
