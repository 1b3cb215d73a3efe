namespace QueueWorker.Bench.Tests;

/// <summary>Fails the unit run when a test class of this project has no Unit or Integration category.</summary>
[Trait("Category", "Unit")]
public sealed class CategoryTests : CategoryCheck;
